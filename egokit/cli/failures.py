"""How a failed command is reported.

A problem with the user's input, files or machine (an :class:`~egokit.errors.EgokitError`, an operating-system
error such as a read-only or full disk or a missing permission, a file that is not UTF-8 text) is printed as one
line that names the path and says what to do, and the command exits with :data:`USER_ERROR_EXIT`. Errors raised
in DataLoader worker processes (which PyTorch re-raises with the worker's traceback pasted into the message) are
reported exactly as if they had been raised in the main process. Anything else is a bug and keeps Python's
traceback. ``egokit --traceback`` or ``EGOKIT_DEBUG=1`` print the full traceback before the line, for bug reports.
"""

from __future__ import annotations

import ast
import errno
import re
import sys
import traceback
from collections.abc import Mapping, Sequence

from egokit.errors import EgokitError

__all__ = ["DEBUG_ENV", "USER_ERROR_EXIT", "describe_os_error", "report_failure", "traceback_requested",
           "unwrap_worker_error", "user_message"]

DEBUG_ENV = "EGOKIT_DEBUG"
USER_ERROR_EXIT = 2

_ENOSPC = "free some space or write to another disk, then run the same command again"
_ADVICE = {  # what to do, after the system's own description of the error
    errno.EACCES: "fix its permissions or choose another location",
    errno.EPERM: "fix its permissions or choose another location",
    errno.EROFS: "choose a location on a writable disk",
    errno.ENOSPC: _ENOSPC,
    errno.EDQUOT: _ENOSPC,
    errno.ENOTDIR: "a part of this path is a file, not a folder: choose another path",
    errno.EISDIR: "give a file path, not a folder",
    errno.ENOENT: "check the path",
    errno.EEXIST: "remove it or choose another path",
    errno.ENAMETOOLONG: "choose a shorter path",
    errno.ELOOP: "check the symbolic links on this path",
    errno.EMFILE: "raise the open-file limit (ulimit -n) or use fewer data loader workers",
    errno.ENFILE: "raise the open-file limit or use fewer data loader workers",
    errno.EIO: "the disk or network file system may be failing: check it, then run again",
    errno.EPIPE: "the output was closed before the command finished writing",
}

# "Caught DataError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n..."
_WORKER = re.compile(r"\ACaught (?P<name>[\w.]+) (?P<where>in .+?)\.\nOriginal (?P<trace>Traceback .*)\Z", re.DOTALL)
_ERRNO = re.compile(r"\A\[Errno (?P<errno>\d+)\] (?P<strerror>.*?)(?:: (?P<f1>'.*?'|\".*?\")"
                    r"(?: -> (?P<f2>'.*?'|\".*?\"))?)?\Z", re.DOTALL)


def traceback_requested(argv: Sequence[str], environ: Mapping[str, str]) -> bool:
    """Whether ``egokit --traceback ...`` (a global option, before the command) or ``EGOKIT_DEBUG=1`` was given."""
    if environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}:
        return True
    for arg in argv:
        if arg == "--traceback":
            return True
        if not arg.startswith("-"):  # the command name: later arguments are the command's own
            return False
    return False


def unwrap_worker_error(exc: BaseException) -> BaseException:
    """The error a DataLoader worker raised, as if raised here: same type, its own message (and, for an OSError,
    its errno and file name), without the worker traceback PyTorch pastes into the message. Other errors are
    returned unchanged."""
    match = _WORKER.match(str(exc)) if exc.args and isinstance(exc.args[0], str) else None
    if match is None:
        return exc
    name = match["name"].rsplit(".", 1)[-1]
    lines = match["trace"].rstrip("\n").split("\n")
    # The last line that starts (unindented) with the exception's type begins the original message.
    head = re.compile(rf"\A(?:[\w.]+\.)?{re.escape(name)}(?:: |\Z)")
    for i in range(len(lines) - 1, -1, -1):
        if head.match(lines[i]):
            first = lines[i].split(": ", 1)[1] if ": " in lines[i] else ""
            message = "\n".join([first, *lines[i + 1:]]).strip()
            break
    else:
        return exc
    if isinstance(exc, OSError):
        return _os_error_from_text(message, type(exc))
    if isinstance(exc, EgokitError):
        try:
            return type(exc)(message)
        except Exception:  # noqa: BLE001 - a subclass with another signature: keep the message as is
            return EgokitError(message)
    return exc


def _os_error_from_text(text: str, kind: type[OSError]) -> OSError:
    match = _ERRNO.match(text)
    if match is None:
        return kind(text)
    names = []
    for key in ("f1", "f2"):
        try:
            names.append(ast.literal_eval(match[key]) if match[key] else None)
        except (ValueError, SyntaxError):
            names.append(match[key])
    return OSError(int(match["errno"]), match["strerror"], *([names[0]] if names[1] is None else names))


def describe_os_error(exc: OSError) -> str:
    """``PATH: what happened; what to do`` for an operating-system error."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    advice = _ADVICE.get(exc.errno) if exc.errno is not None else None
    text = f"{reason}; {advice}" if advice else reason
    if exc.filename is None:
        return text
    where = str(exc.filename) if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    return f"{where}: {text}"


def user_message(exc: BaseException) -> str | None:
    """The one line to print for a user-facing error; None for a bug (which keeps its traceback)."""
    exc = unwrap_worker_error(exc)
    if isinstance(exc, EgokitError):
        return str(exc)
    if isinstance(exc, OSError):
        return describe_os_error(exc)
    if isinstance(exc, UnicodeDecodeError):
        return (f"a file is not UTF-8 text (byte {exc.start}: {exc.reason}); save it as UTF-8 (run with "
                "`egokit --traceback` to see which file was being read)")
    return None


def report_failure(exc: BaseException, debug: bool, print_line) -> int | None:
    """Print ``exc`` for the user (the traceback first when ``debug``) and return the exit code; None when ``exc``
    is a bug that should propagate with its traceback."""
    message = user_message(exc)
    if message is None:
        return None
    if debug:
        traceback.print_exception(exc, file=sys.stderr)
    print_line(message)
    return USER_ERROR_EXIT
