"""One process at a time in a run folder: an OS lock that dies with its holder.

Two processes training into one folder would interleave checkpoints and metrics
and leave a run that is neither. The lock is `flock` on a file in the run folder
(`runfolder.LOCK`): the kernel drops it when its holder exits, however it exits,
so a `kill -9` leaves no lock that blocks a resume. The holder's pid and host are
written into the file for the message the next process prints. Under torchrun
only rank 0 holds it (the other ranks write nothing to the folder).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
from pathlib import Path
from types import TracebackType

from vaekit.errors import RunBusy
from vaekit.runfolder import RunFolder


class RunLock:
    """The lock of one run folder; `take` is idempotent, `release` undoes it.

    A folder that does not exist yet has nothing to protect: `take()` waits for it,
    `take(create=True)` makes it (and `release` removes it again when the run left
    nothing in it).
    """

    def __init__(self, folder: RunFolder | str | Path, holds: bool = True) -> None:
        self.folder = folder if isinstance(folder, RunFolder) else RunFolder(folder)
        self.holds = holds  # False on torchrun ranks other than 0
        self._fd: int | None = None
        self._created = False

    @property
    def held(self) -> bool:
        return self._fd is not None

    def take(self, create: bool = False) -> RunLock:
        """Hold the lock, or RunBusy naming the process that holds it."""
        if self.held or not self.holds:
            return self
        if not self.folder.path.is_dir():
            if not create:
                return self
            try:
                self.folder.path.mkdir(parents=True)
                self._created = True
            except FileExistsError:  # another process made it a moment ago
                pass
        path = self.folder.lock_path
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise RunBusy(
                    f"{self.folder.path} is being trained by another process ({holder}); "
                    "wait for it to finish or stop it, then --resume"
                ) from None
            if _same_file(fd, path):
                break
            os.close(fd)  # its holder removed the file after we opened it: open the new one
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file (while still holding it) and let go."""
        if self._fd is None:
            return
        self.folder.lock_path.unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None
        if self._created:  # rmdir fails unless empty: only a run that wrote nothing goes
            with contextlib.suppress(OSError):
                self.folder.path.rmdir()

    def __enter__(self) -> RunLock:
        return self.take()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _holder(fd: int) -> str:
    """'pid 123 on host h' from the lock file, as far as its holder has written it."""
    words = os.pread(fd, 256, 0).decode("utf-8", "replace").split()
    if len(words) >= 2 and words[0].isdigit():
        return f"pid {words[0]} on host {words[1]}"
    return "its pid not yet written"


def _same_file(fd: int, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (now.st_dev, now.st_ino)
