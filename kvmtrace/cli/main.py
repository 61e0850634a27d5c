"""Entry point: the ``kvmtrace`` group, whose commands are imported only when they run."""
from __future__ import annotations

import atexit
import importlib
import os
import sys
import threading
from typing import NoReturn

import click

from .contract import EXIT_BAD_INPUT

#: command → (module under kvmtrace.cli, one-line help): a command's module, and the pandas,
#: scipy or matplotlib it needs, are imported only when that command runs
COMMANDS = {
    "events": ("events", "Show what kvmtrace read from TRACE: format, events per type and CPU, skipped and lost."),
    "analyze": ("analyze", "Find guest entry/exit bugs in TRACE and say which path the kernel runs, per bug class."),
    "compare": ("compare", "Compare a kernel BEFORE a change with the kernel AFTER it."),
    "report": ("report", "Write a pull-request-ready report on TRACE into DIR."),
    "synth": ("synth", "Simulate the host side of KVM guest entry/exit and write the trace a real kernel would write."),
    "cache": ("cache", "Show or empty the Parquet cache of parsed traces."),
}


class _Commands(click.Group):
    """A group whose commands are imported on first use; ``--help`` lists them without importing any."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        return getattr(importlib.import_module(f"{__package__}.{COMMANDS[name][0]}"), name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, text) for name, (_, text) in COMMANDS.items()])


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kvmtrace")
def cli() -> None:
    """Read ftrace/perf traces around kvm_entry/kvm_exit and find guest entry/exit bugs.

    Input formats are sniffed from content: trace.dat (versions 6 and 7),
    trace-cmd report text (any of -l -t -N), the kernel's tracefs
    trace/trace_pipe text, perf script output; text optionally gzip, xz, zstd or
    bzip2 compressed, wrapped or mail-quoted.
    """


def main() -> None:
    from ..memory import keep_freed_heap

    # numpy's OpenBLAS starts a thread per core at import, and they spin ~0.1 s of CPU before they
    # sleep: on a laptop's few cores that is taken from the parsers. No command multiplies matrices.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    keep_freed_heap()  # a command is one process that allocates and frees trace-sized arrays in turn
    try:
        cli(prog_name="kvmtrace")  # click's standalone mode ends every run with SystemExit
    except SystemExit as done:
        leave(done.code)


def leave(code: object) -> NoReturn:
    """End the process once a command is done, without tearing down the interpreter: freeing a
    large trace's arrays and every module object one by one takes ~0.1 s, and the system takes the
    memory back at once anyway. Exit handlers still run and output is flushed first; a thread
    still running, or a profiler or tracer watching (cProfile writes its file after the command
    returns; coverage, debuggers), makes it a normal exit."""
    if not isinstance(code, int):  # as Python's own exit: None is success, anything else a message
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    if sys.getprofile() is not None or sys.gettrace() is not None or \
            any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        if sys.stdout is not None:  # None: started with its descriptor closed
            sys.stdout.flush()
    except BrokenPipeError:  # `kvmtrace analyze ... | head`: the reader left, as the commands treat it
        pass
    except OSError as exc:  # what was left to write did not fit (a full disk): one line, as in a command
        if sys.stderr is not None:
            print(f"kvmtrace: error: {exc}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    if sys.stderr is not None:
        sys.stderr.flush()
    os._exit(code)
