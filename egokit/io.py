"""Atomic file and folder writes: every file egokit writes goes through here.

A reader (another process, a resumed run, a user's ``ls``) must never see half a file or half a folder, and a
crash or kill must never leave a partial one under the final name. Everything is written under a hidden temporary
name in the *same* folder (so the final ``os.replace`` is an atomic rename on the same file system) and renamed
only once complete; on failure the temporary is removed. Folders are swapped in whole: the old one is renamed
aside, the new one renamed in, then the old one deleted.
"""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from egokit.errors import EgokitError

__all__ = ["atomic_dir", "atomic_path", "check_output_dir", "write_bytes_atomic", "write_csv_atomic",
           "write_json_atomic", "write_text_atomic"]

_NEARLY_FULL = 1 << 20  # bytes: a write that failed with less free space than this failed because the disk is full


def _disk_full(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):
        return False
    blocks = stat.f_bfree if hasattr(os, "geteuid") and os.geteuid() == 0 else stat.f_bavail
    return blocks * stat.f_frsize < _NEARLY_FULL


def _named(exc: BaseException, target: Path, tmp: Path | None, folder: Path) -> BaseException | None:
    """An OSError naming ``target`` (not the hidden temporary) for a failed write, or None to re-raise ``exc``.

    Writers report errors in their own ways: an OSError without a file name, one naming the temporary, or (torch,
    safetensors) a RuntimeError when the disk is full; the user needs the file they asked for and the reason."""
    if isinstance(exc, OSError):
        name = exc.filename
        if exc.errno is None or not (name is None or tmp is None or str(name).startswith(str(tmp))):
            return None
        inside = str(name)[len(str(tmp)):] if name is not None and tmp is not None else ""
        return OSError(exc.errno, exc.strerror, str(target) + inside)
    if isinstance(exc, Exception) and not isinstance(exc, EgokitError) and _disk_full(folder):
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
    return None


def check_output_dir(path: str | os.PathLike) -> Path:
    """Raise the OSError that writing into folder ``path`` would raise (naming the path), before any work is done;
    creates nothing. A folder that does not exist yet is checked at its nearest existing parent."""
    path = Path(path).expanduser()
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    if os.path.lexists(probe) and not probe.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(probe))
    if not os.access(probe, os.W_OK | os.X_OK):
        try:
            read_only = bool(os.statvfs(probe).f_flag & os.ST_RDONLY)
        except (OSError, AttributeError):
            read_only = False
        code = errno.EROFS if read_only else errno.EACCES
        raise OSError(code, os.strerror(code), str(probe))
    return path


@contextmanager
def atomic_path(target: str | os.PathLike, *, suffix: str = ".tmp", fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``, on error deleted.

    The block writes the file itself (any library that takes a path: ``torch.save``, ``safetensors``, PyAV,
    PIL). ``suffix`` keeps the extension for writers that pick the format from it (``.mp4``, ``.png``);
    ``fsync`` flushes the data to disk before the rename (for files that must survive a power loss).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    except OSError as exc:  # it names a random temporary; the user needs the file they asked for
        raise _named(exc, target, None, target.parent) or exc from exc
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        named = _named(exc, target, tmp, target.parent)
        tmp.unlink(missing_ok=True)
        if named is not None:
            raise named from exc
        raise


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``target``; on success it replaces ``target`` as a whole.

    An existing ``target`` is renamed to a hidden ``.old`` name first and deleted after the swap, so at every
    moment ``target`` is either the complete old folder or the complete new one (never a mix). A file named
    ``target`` is an error.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise FileExistsError(f"{target} exists and is not a folder")
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    except OSError as exc:
        raise _named(exc, target, None, target.parent) or exc from exc
    try:
        yield tmp
        old = None
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
            os.replace(target, old / target.name)
        os.replace(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException as exc:
        named = _named(exc, target, tmp, target.parent)
        shutil.rmtree(tmp, ignore_errors=True)
        if named is not None:
            raise named from exc
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes, *, fsync: bool = False) -> Path:
    with atomic_path(path, fsync=fsync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, *, fsync: bool = False) -> Path:
    """UTF-8 text with the newlines exactly as given (no platform translation)."""
    return write_bytes_atomic(path, text.encode("utf-8"), fsync=fsync)


def write_json_atomic(path: str | os.PathLike, data: Any, *, indent: int | None = 2, fsync: bool = False) -> Path:
    """JSON (``default=str`` so paths and other plain objects serialise), newline-terminated."""
    return write_text_atomic(path, json.dumps(data, indent=indent, default=str) + "\n", fsync=fsync)


def write_csv_atomic(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]], *,
                     delimiter: str = ",") -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return write_text_atomic(path, buffer.getvalue())
