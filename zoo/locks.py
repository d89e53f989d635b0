"""Operating-system file locks, released by the kernel when their process dies.

- `folder_lock` serialises the writers of a model folder and keeps its readers out while a
  writer is mid-way: writers hold it exclusively, readers shared. It locks the folder itself
  (``flock`` on the directory), so it leaves no file behind, but on NFS (see `folder_lock`).
- `RunLock` keeps two ``zoo train`` runs out of one folder: the second fails at once, naming the
  process that holds the folder.

Both use ``flock``, which POSIX systems have. Where it is missing (Windows) they do nothing, and
the README says so; where a file system refuses every kind of lock, the folder lock is skipped
rather than failing the load or save, and says so to its caller.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

_UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.EBADF)


# The lock file of a folder whose file system cannot lock the folder itself (see folder_lock).
FOLDER_LOCK_NAME = ".zoo-folder.lock"


@contextlib.contextmanager
def folder_lock(folder: Path, *, exclusive: bool) -> Iterator[bool]:
    """Hold ``folder`` locked for the block: ``exclusive`` for a writer, shared for a reader.
    Yields whether the lock is held.

    The folder itself is locked, so no file is left behind. NFS cannot lock a folder (its
    locks need a file open for writing), so there the writer locks `FOLDER_LOCK_NAME` in the
    folder, and readers lock it where it exists. A writer waits for the readers and the writer
    before it; saves and loads are short.
    """
    with contextlib.ExitStack() as held:
        yield fcntl is not None and _lock(folder, exclusive, held)


def _lock(folder: Path, exclusive: bool, held: contextlib.ExitStack) -> bool:
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # unreadable: the read or write that follows says why
        return False
    held.callback(os.close, descriptor)  # closing releases the lock
    if _flock(descriptor, exclusive):
        return True
    flags = os.O_RDWR | os.O_CREAT if exclusive else os.O_RDONLY
    try:
        descriptor = os.open(folder / FOLDER_LOCK_NAME, flags, 0o644)
    except OSError:  # no lock file, or a folder that takes no files: go on unlocked
        return False
    held.callback(os.close, descriptor)
    return _flock(descriptor, exclusive)


def _flock(descriptor: int, exclusive: bool) -> bool:
    """Lock ``descriptor``, waiting for it; False where the file system cannot lock it."""
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
    except OSError as error:
        if error.errno in _UNSUPPORTED:
            return False
        raise
    return True


class FolderInUseError(OSError):
    """Another live process holds the lock; ``holder`` describes it ("process 1234")."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"held by {holder}")
        self.holder = holder


class RunLock:
    """An exclusive lock on the file ``path``, taken at once or not at all.

    The file holds the process id of its holder, so that a process that finds it taken can say
    which process to wait for. It is removed when the lock is released; a crashed holder's file
    stays, unlocked, and the next run takes it over.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock.

        Raises:
            FolderInUseError: another process holds it.
            OSError: the lock file cannot be created.
        """
        if fcntl is None:
            return
        while True:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._holder(descriptor)
                os.close(descriptor)
                raise FolderInUseError(holder) from None
            except OSError as error:
                os.close(descriptor)
                if error.errno in _UNSUPPORTED:
                    return
                raise
            if self._is_current(descriptor):
                break
            os.close(descriptor)  # its holder removed the file as we took it: take the new one
        os.ftruncate(descriptor, 0)
        os.write(descriptor, f"{os.getpid()}\n".encode())
        self._descriptor = descriptor

    def release(self) -> None:
        """Remove the lock file and let go of the lock."""
        if self._descriptor is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._descriptor)
        self._descriptor = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def _is_current(self, descriptor: int) -> bool:
        """Whether ``descriptor`` is still the file at ``path`` (not one removed meanwhile)."""
        try:
            here = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(descriptor)
        return (here.st_dev, here.st_ino) == (mine.st_dev, mine.st_ino)

    @staticmethod
    def _holder(descriptor: int) -> str:
        try:
            text = os.pread(descriptor, 32, 0).decode("ascii").strip()
        except (OSError, UnicodeDecodeError):
            text = ""
        return f"process {text}" if text.isdigit() else "another process"
