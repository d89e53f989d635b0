"""Crash-safe file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat
import tempfile
from pathlib import Path

from zoo.errors import OutputFileError
from zoo.files import is_folder


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    The temporary file is flushed to disk before it replaces ``path``, and removed if
    anything fails, so an interrupted write leaves ``path`` as it was.

    Raises:
        OutputFileError: the file cannot be written (no such folder, no permission, ...), or
            something other than a regular file stands at ``path`` (a symbolic link, a FIFO,
            a device node), which a rename would replace.
    """
    if not isinstance(path, (str, os.PathLike)) or "\0" in str(os.fspath(path)):
        raise OutputFileError(f"cannot write {path!r}: not the path of a file")
    path = Path(path)
    _check_replaceable(path)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise OutputFileError(f"cannot write {path}: {error.strerror or error}") from error
        raise
    sync_folder(path.parent)


def check_writable(path: str | Path) -> None:
    """Fail now, not after an hour's work, if a file could not be written at ``path`` later:
    its folder must exist and take a new file (a file is made there and removed), and
    whatever stands at ``path`` must be a regular file (see `_check_replaceable`).

    Raises:
        OutputFileError: naming the path and why.
    """
    path = Path(path)
    if not is_folder(path.parent):
        raise OutputFileError(f"cannot write {path}: folder {path.parent} does not exist")
    _check_replaceable(path)
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as error:
        raise OutputFileError(f"cannot write {path}: {error.strerror or error}") from None


def _check_replaceable(path: Path) -> None:
    """Refuse to replace anything but a regular file: a rename would put a file where a
    folder, a symbolic link, a FIFO or a device node such as /dev/null stands."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as error:
        raise OutputFileError(f"cannot write {path}: {error.strerror or error}") from None
    if stat.S_ISREG(mode):
        return
    kinds = {stat.S_ISDIR: "a folder", stat.S_ISLNK: "a symbolic link"}
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    raise OutputFileError(f"cannot write {path}: it is {kind}, which is never replaced")


def sha256_hex(data: bytes) -> str:
    """The sha256 of ``data`` as 64 lower-case hex digits."""
    return hashlib.sha256(data).hexdigest()


def sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the platform allows it (POSIX)."""
    if os.name != "posix":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
