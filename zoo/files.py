"""Reading files that may come from strangers: regular files only, bounded in size.

A config, a weights file, a recipe or an image may have been replaced by a folder, a FIFO that
would block the reader forever, or a device that never ends. `read_file` opens without blocking,
refuses anything but a regular file, and checks the size against a limit before it reads a
byte, so a hostile file costs at most ``limit`` bytes of memory. Callers turn its errors into
their own `zoo.ZooError` subclasses, which name the file and the fix.
"""

from __future__ import annotations

import contextlib
import os
import stat
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

_CHUNK = 1 << 20


class NotARegularFileError(OSError):
    """A path that is a folder, a FIFO, a socket or a device, not a file."""


class FileTooLargeError(OSError):
    """A file larger than the limit its reader accepts; ``size`` is its size in bytes."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size:,} bytes, more than the {limit:,} allowed")
        self.size, self.limit = size, limit


class Hasher(Protocol):
    """What `read_file` feeds the bytes it reads to, such as ``hashlib.sha256()``."""

    def update(self, data: bytes, /) -> None: ...


def read_file(path: str | os.PathLike[str], limit: int, hasher: Hasher | None = None) -> bytes:
    """The bytes of the regular file at ``path``, which must hold at most ``limit`` of them.

    The file is read once, in chunks, each passed to ``hasher.update`` as it arrives: a sha256
    costs no second pass. A file that grows past ``limit`` while it is read is refused too.

    Raises:
        FileNotFoundError: nothing is there.
        NotARegularFileError: a folder, FIFO, socket or device is there.
        FileTooLargeError: the file holds more than ``limit`` bytes.
        OSError: it cannot be opened or read.
    """
    with _open_regular(path) as (handle, size):
        if size > limit:
            raise FileTooLargeError(size, limit)
        data = bytearray()
        while chunk := handle.read(min(_CHUNK, limit + 1 - len(data))):
            data += chunk
            if hasher is not None:
                hasher.update(chunk)
            if len(data) > limit:
                raise FileTooLargeError(len(data), limit)
    return bytes(data)


def read_head(path: str | os.PathLike[str], size: int) -> bytes:
    """The first ``size`` bytes of the regular file at ``path`` (fewer if it is shorter).

    Raises:
        FileNotFoundError, NotARegularFileError, OSError: as `read_file`.
    """
    with _open_regular(path) as (handle, _):
        data = bytearray()
        while len(data) < size and (chunk := handle.read(min(_CHUNK, size - len(data)))):
            data += chunk
    return bytes(data)


@contextlib.contextmanager
def _open_regular(path: str | os.PathLike[str]) -> Iterator[tuple[BinaryIO, int]]:
    """The open file at ``path`` and its size, if it is a regular file; opening never waits
    (for the writer of a FIFO, say)."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        descriptor = os.open(path, flags)
    except IsADirectoryError:
        raise NotARegularFileError(f"{path} is not a regular file") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise NotARegularFileError(f"{path} is not a regular file")
    except BaseException:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb", buffering=0) as handle:
        yield typing.cast(BinaryIO, handle), info.st_size


def expand_home(path: Path) -> Path:
    """``path`` with a leading "~" or "~user" made that home folder, as a shell does; left as
    it is when there is no such user (so it names no existing folder)."""
    try:
        return path.expanduser()
    except RuntimeError:
        return path


def is_regular_file(path: Path) -> bool:
    """Whether ``path`` is a regular file; False for a path the system cannot look up."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def is_folder(path: Path) -> bool:
    """Whether ``path`` is a folder; False for a path the system cannot even look up (a name
    longer than the file system allows, say)."""
    try:
        return path.is_dir()
    except (OSError, ValueError):
        return False
