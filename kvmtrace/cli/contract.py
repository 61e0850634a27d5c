"""The error contract every command shares: a KvmtraceError (bad input) or any failure is one
stderr line and exit code 2, never a traceback."""
from __future__ import annotations

import functools
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
