"""The CLI's one error handler: every failure is one line on stderr naming the file, line, option or
lock holder, with a non-zero exit, never a traceback.

`TrackplanGroup` is the Typer group class of the `trackplan` app: it runs a command and turns what
escapes it into that line. Commands raise `CliError` (or let a known exception through); only an
unexpected exception keeps its traceback, and only with TRACKPLAN_DEBUG=1.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

import typer
from typer.core import TyperGroup

# typer vendors click (typer._click); its exceptions are reached through the public ones where it can
_ClickException = type(typer.BadParameter("x")).__mro__[2]  # BadParameter -> UsageError -> ClickException
_NoArgsIsHelp = getattr(__import__("typer._click.exceptions", fromlist=["x"]), "NoArgsIsHelpError", ())


class CliError(Exception):
    """A user-facing error: `message` is the whole line (it names the file, option or holder)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code


_LOCK = re.compile(
    r'Could not set lock on file "(?P<file>[^"]+)": Conflicting lock is held in (?P<holder>.+?)'
    r"(?:\. See also|$)"
)
_NOT_DUCKDB = re.compile(r'The file "(?P<file>[^"]+)" exists, but it is not a valid DuckDB database file')
_DUCK_FILE = re.compile(r'(?:file|database) "(?P<file>[^"]+)"')
_NOT_UTF8_NAME = re.compile(r"cannot encode str as UTF-8, surrogate")

# the commands that open a warehouse (lint and diff only with --warehouse / --replay): a DuckDB error
# elsewhere comes from an in-memory engine (validate's), and is not the warehouse's
WAREHOUSE_COMMANDS = frozenset({"run", "forget", "report", "review", "lint", "diff", "demo"})


def shown(text: object) -> str:
    """A path or message as printed: bytes that are not UTF-8 show as `\\xff`, never an encoding error."""
    from tracking_plan.reader import printable

    text = os.fspath(text) if isinstance(text, os.PathLike) else str(text)
    try:  # a name read from the file system keeps its undecodable bytes as lone surrogates
        return printable(text)
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def one_line(exc: BaseException, command: str | None = None) -> tuple[str, int] | None:
    """(message, exit code) of an exception a user can act on; None for a defect (keep the traceback).

    ``command`` is the subcommand that ran: a DuckDB error is blamed on the warehouse only in one
    that opens a warehouse."""
    if isinstance(exc, CliError):
        return str(exc), exc.exit_code
    if getattr(exc, "user_error", False):  # a lower layer's error meant for the user (no import upward)
        return " ".join(str(exc).split()), getattr(exc, "exit_code", 2)
    from tracking_plan.loader import PlanError

    if isinstance(exc, PlanError):
        first, more = exc.problems[0] if exc.problems else "the plan could not be loaded", len(exc.problems) - 1
        return f"{first}" + (f" (and {more} more: run `trackplan lint`)" if more > 0 else ""), 2
    msg = " ".join(str(exc).split())
    if type(exc).__module__.split(".")[0] in ("duckdb", "_duckdb"):
        if m := _LOCK.search(msg):
            return (
                f"{m['file']}: locked by {m['holder']}; close that connection (a notebook, the Dagster UI, "
                "another trackplan) and retry"
            ), 3
        if m := _NOT_DUCKDB.search(msg):
            return f"{m['file']}: not a DuckDB database", 2
        low = msg.lower()
        if "database does not exist" in low:  # opened read-only (lint --warehouse, replay): nothing to read
            where = m["file"] if (m := _DUCK_FILE.search(msg)) else "the warehouse"
            return f"{where}: no such warehouse (run `trackplan run` first)", 2
        if "permission denied" in low or "read-only" in low or "read only" in low:
            where = m["file"] if (m := _DUCK_FILE.search(msg)) else "the warehouse"
            return f"{where}: cannot write the warehouse ({msg.removeprefix('IO Error: ')})", 3
        if _NOT_UTF8_NAME.search(msg):
            return "a file name given is not UTF-8, and DuckDB opens only UTF-8 paths: rename the file", 2
        if command is not None and command not in WAREHOUSE_COMMANDS:
            return f"DuckDB: {msg}", 3
        return f"warehouse: {msg}", 3
    if isinstance(exc, PermissionError):
        return f"{exc.filename}: permission denied", 3
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return f"{exc.filename}: no such file or directory", 2
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror}", 3
    return None


def one_of(*allowed: str) -> Callable[[str | None], str | None]:
    """An option callback: the value must be one of `allowed` (a bad one names the option)."""

    def check(ctx: typer.Context, param: typer.CallbackParam, value: str | None) -> str | None:
        if value is not None and value not in allowed:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", ctx=ctx, param=param)
        return value

    return check


def _say(line: str) -> None:
    # one line, whatever a path in it holds: a newline shows as \n, a byte that is not UTF-8 as \xff
    sys.stderr.write("trackplan: " + shown(line).replace("\r", "\\r").replace("\n", "\\n") + "\n")


class TrackplanGroup(TyperGroup):
    """Runs a command and turns whatever escapes it into one line on stderr and an exit code."""

    command: str | None = None  # the subcommand being run (set by resolve_command)

    def resolve_command(self, ctx, args):
        name, cmd, rest = super().resolve_command(ctx, args)
        self.command = name
        return name, cmd, rest

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode: bool = True, **extra):
        self.command = None
        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
        except _NoArgsIsHelp as e:
            e.show()
            code = e.exit_code
        except _ClickException as e:  # a usage error: it names the option
            _say(" ".join(e.format_message().split()))
            code = e.exit_code
        except typer.Abort:
            _say("aborted")
            code = 1
        except typer.Exit as e:
            code = e.exit_code
        except KeyboardInterrupt:
            code = 130
        except Exception as e:
            said = one_line(e, self.command)
            if said is None:
                if os.environ.get("TRACKPLAN_DEBUG"):
                    raise
                said = (
                    (
                        f"{type(e).__name__}: {' '.join(str(e).split())} (a defect: please report it; "
                        f"TRACKPLAN_DEBUG=1 shows the traceback)"
                    ),
                    1,
                )
            _say(said[0])
            code = said[1]
        if standalone_mode:
            sys.exit(code)
        return code
