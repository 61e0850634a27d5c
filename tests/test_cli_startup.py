"""The command line starts without the heavy libraries: a command's imports happen when it runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click

from kvmtrace.cli.main import COMMANDS, cli

HEAVY = ("pandas", "numpy", "pyarrow", "scipy", "matplotlib", "dask", "distributed")


def _modules_after(*argv: str) -> tuple[int, set[str], str]:
    """Run the CLI in a fresh interpreter with ``argv``; the top-level modules it had imported at exit."""
    code = ("import sys, json, atexit\n"
            "atexit.register(lambda: sys.__stderr__.write('\\nMODULES ' + json.dumps(sorted({m.split('.')[0] for m in sys.modules}))))\n"
            "from kvmtrace.cli import main\n"
            f"sys.argv = ['kvmtrace', *{list(argv)!r}]\n"
            "main()\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    mods = json.loads(p.stderr.rsplit("MODULES ", 1)[1])
    return p.returncode, set(mods), p.stdout


def test_help_and_events_help_import_no_heavy_library():
    for argv in (["--help"], ["events", "--help"], ["--version"]):
        rc, mods, out = _modules_after(*argv)
        assert rc == 0 and out
        assert not mods & set(HEAVY), (argv, mods & set(HEAVY))


def test_the_command_list_says_what_each_command_says_of_itself():
    ctx = click.Context(cli)
    rc, _, out = _modules_after("--help")
    for name, (_, text) in COMMANDS.items():
        assert cli.get_command(ctx, name).get_short_help_str(limit=300) == text
        assert name in out
    assert cli.get_command(ctx, "nope") is None


def test_every_option_of_every_command_says_what_it_does():
    ctx = click.Context(cli)
    for name in COMMANDS:
        cmd = cli.get_command(ctx, name)
        bare = [p.name for p in cmd.params if isinstance(p, click.Option) and not p.help]
        assert not bare, (name, bare)
    rc, _, out = _modules_after("--help")
    assert "trace.dat" in out and "perf script" in out


def test_the_command_ends_without_teardown_but_loses_no_output_exit_code_or_exit_handler(tmp_path):
    """``main`` leaves by ``os._exit`` once a command is done: everything a run prints (here ~0.5 MB of
    JSON, far beyond a pipe's buffer), its exit code and the exit handlers must survive that."""
    from click.testing import CliRunner

    sample = Path(__file__).resolve().parent.parent / "sample_traces" / "arm64-6.1-synth-prefix-tick.v7.dat"
    argv = ["analyze", "--no-cache", "--json", str(sample)]
    rc, mods, out = _modules_after(*argv)  # its exit handler reports the modules: it ran
    expected = CliRunner().invoke(cli, argv)
    assert rc == expected.exit_code and "pandas" in mods
    assert json.loads(out) == json.loads(expected.stdout)
    assert len(out) == len(expected.stdout) > 400_000
    rc, _, out = _modules_after("analyze", str(tmp_path / "missing.dat"))
    assert rc == 2 and out == ""


def test_a_profiled_command_still_writes_its_profile(tmp_path):
    """cProfile writes its file after the command returns: the end without teardown waits for it."""
    out = tmp_path / "run.prof"
    p = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "kvmtrace", "--version"],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "kvmtrace" in p.stdout
    import pstats

    assert pstats.Stats(str(out)).total_calls > 0


def test_a_command_started_with_stdout_closed_ends_quietly():
    """A cron job or a daemon may start it with descriptor 1 closed (Python's sys.stdout is then
    None): the end without teardown must not trip over that."""
    sample = Path(__file__).resolve().parent.parent / "sample_traces" / "x86-6.1-synth-fixed-tick.v7.dat"
    for argv in ([str(sample)], ["--help"]):
        cmd = [sys.executable, "-m", "kvmtrace", *(["analyze", "--no-cache"] if argv != ["--help"] else []), *argv]
        p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           preexec_fn=lambda: os.close(1))
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr


def test_output_left_unwritten_at_the_end_is_one_line_and_exit_2():
    """What is still buffered when the command ends is flushed by ``leave``; a disk that fills
    then is the same one-line error, exit 2, as anywhere in a command."""
    code = ("import errno, io, sys\n"
            "class Full(io.StringIO):\n"
            "    def flush(self):\n"
            "        raise OSError(errno.ENOSPC, 'No space left on device')\n"
            "sys.stdout = Full()\n"
            "from kvmtrace.cli.main import leave\n"
            "leave(0)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.strip().splitlines() == ["kvmtrace: error: [Errno 28] No space left on device"]
