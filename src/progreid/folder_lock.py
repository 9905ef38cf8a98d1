"""One writer per output folder: an OS lock on ``<folder>/.lock`` (pip's and Lightning's habit).

``fcntl.flock`` is released by the kernel when its process ends, however it ends (``kill -9``
included), so a dead run never leaves a stale lock behind; the holder's pid is written into the
file so that a second writer can say who holds the folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from progreid.errors import ProgReIDError

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # not on Windows: one writer is then the user's to ensure
    fcntl = None  # type: ignore[assignment]


class FolderLock:
    """Hold ``folder``'s lock from :meth:`acquire` until :meth:`release` or the process ends."""

    def __init__(self, folder: str | Path, what: str = "run"):
        self.folder = Path(folder)
        self.what = what
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.folder / LOCK_NAME

    def acquire(self) -> "FolderLock":
        if self._fd is not None:
            return self
        ensure_writable_folder(self.folder, "--out")
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ProgReIDError(f"{self.folder}: cannot be written ({exc.strerror}). Fix: choose a folder you can "
                                "write to with --out.") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_pid(fd)
                os.close(fd)
                raise ProgReIDError(f"{self.folder}: another progreid process{f' (pid {holder})' if holder else ''} "
                                    f"is writing this {self.what} folder. Fix: wait for it to end (or stop it), "
                                    "or choose another --out.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 32).decode().strip()
    except OSError:
        return ""


def ensure_writable_folder(folder: str | Path, option: str = "--out") -> Path:
    """Create ``folder`` if needed; a file in its place, or a folder that cannot be written, is an error
    naming it."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ProgReIDError(f"{option} {folder}: is a file, and a folder is needed here. Fix: give a folder path.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ProgReIDError(f"{option} {folder}: cannot be created ({exc.strerror}). Fix: choose a folder you can "
                            "write to.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ProgReIDError(f"{option} {folder}: cannot be written (permission denied). Fix: choose a folder you can "
                            "write to.")
    return folder
