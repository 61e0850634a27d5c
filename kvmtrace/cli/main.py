"""Entry point and the error contract shared by every command."""
from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from ..errors import KvmtraceError

EXIT_BAD_INPUT = 2


def one_line_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn trace errors (and any unexpected failure) into one stderr line and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BrokenPipeError:  # `kvmtrace analyze ... | head`: the reader left, nothing to report
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(0)
        except click.ClickException:  # usage errors: click prints them and exits 2
            raise
        except KvmtraceError as exc:
            click.echo(f"kvmtrace: error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except (OSError, MemoryError) as exc:
            click.echo(f"kvmtrace: error: {exc}", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except Exception as exc:  # noqa: BLE001 - the contract is: never a traceback
            if os.environ.get("KVMTRACE_DEBUG"):
                raise
            click.echo(f"kvmtrace: internal error: {type(exc).__name__}: {exc} "
                       "(set KVMTRACE_DEBUG=1 for a traceback)", err=True)
            sys.exit(EXIT_BAD_INPUT)

    return wrapper


#: command → (module under kvmtrace.cli, one-line help): a command's module, and the pandas,
#: scipy or matplotlib it needs, are imported only when that command runs
COMMANDS = {
    "events": ("events", "Show what kvmtrace read from TRACE: format, events per type and CPU, skipped and lost."),
    "analyze": ("analyze", "Find guest entry/exit bugs in TRACE and say which path the kernel runs, per bug class."),
    "compare": ("compare", "Compare a kernel BEFORE a change with the kernel AFTER it."),
    "report": ("report", "Write a pull-request-ready report on TRACE into DIR."),
    "synth": ("synth", "Simulate the host side of KVM guest entry/exit and write the trace a real kernel would write."),
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
    cli(prog_name="kvmtrace")
