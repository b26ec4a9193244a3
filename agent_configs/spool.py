"""Whose spool files a process replays: its own, and those of processes that are gone.

A no-loss writer (agent_configs/writer.py) spools into a directory of its own process,
`w-<host>-<pid>-<random>` inside the spool root, and holds an exclusive lock (`flock`) on that
directory's `owner.lock` for as long as the process lives. The kernel drops the lock when the
process ends, however it ends (SIGTERM, SIGKILL, the OOM killer); on a volume shared by pods the
file server does (NFSv4 and CephFS keep these locks; a lost node's are dropped when its lease
ends, 90 s by default on NFSv4). A process that replays the root takes, without waiting, the
lock of every other directory in it (`adopt`): holding it, it is the only process replaying that
directory, and it removes the directory once it is empty. So a pod that goes away (a rollout, a
scale-down, a crash) leaves its spool to the others on the same volume, never to two of them,
and a live process's files are replayed by that process only, in the order it wrote them.

One directory per process, not per writer: writers of one process share it (the worker's job
processes run one session each; thread-run jobs share their process). A forked child makes its
own. The lock is the only liveness test, because process ids mean nothing across pods.
"""

import fcntl
import logging
import os
import socket
import stat
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("switchboard.writer")

OWNER_LOCK = "owner.lock"
PREFIX = "w-"

_lock = threading.Lock()  # thread-run jobs share this module
_owned: dict[Path, "_Owned"] = {}  # spool root -> this process's directory in it
_adopting: set[Path] = set()  # directories this process is replaying for a process that is gone


@dataclass(frozen=True)
class _Owned:
    directory: Path
    descriptor: int


def _forget_after_fork() -> None:
    """A forked child holds its parent's locks through inherited descriptors: it lets them go
    (the parent still holds them) and makes its own directory when it spools. Its `_lock` is
    new: another thread of the parent may have held the old one at the fork."""
    global _lock
    _lock = threading.Lock()
    for owned in _owned.values():
        try:
            os.close(owned.descriptor)
        except OSError:
            pass
    _owned.clear()
    _adopting.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


@contextmanager
def own_directory(root: Path) -> Iterator[Path]:
    """This process's directory in `root` (private, 0700), made and locked on first use; it is
    not removed while the block writes into it. Raises OSError when it cannot be made."""
    with _lock:
        owned = _owned.get(root)
        if owned is None or not owned.directory.is_dir():
            if owned is not None:  # removed under us (by hand): its lock is worth nothing now
                os.close(owned.descriptor)
            name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            # made and locked under a name no replay looks at, then named: an adopter never
            # sees it unlocked
            making = root / f".new-{name}"
            making.mkdir(mode=0o700)
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
            descriptor = os.open(making / OWNER_LOCK, flags, 0o600)
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            directory = root / f"{PREFIX}{name}"
            making.rename(directory)
            owned = _owned[root] = _Owned(directory, descriptor)
        yield owned.directory


def owned_directory(root: Path) -> Path | None:
    """This process's directory in `root`, if it has one."""
    with _lock:
        owned = _owned.get(root)
        return owned.directory if owned is not None else None


def release_own_if_empty(root: Path) -> None:
    """Once everything this process spooled in `root` has been replayed, its directory goes
    (a process that spools again makes a new one)."""
    with _lock:
        owned = _owned.get(root)
        if owned is None or _holds_records(owned.directory):
            return
        del _owned[root]
        _remove(owned.directory, owned.descriptor)


class Adoption:
    """The lock of a directory whose owner is gone, held while its files are replayed."""

    def __init__(self, directory: Path, descriptor: int) -> None:
        self.directory = directory
        self._descriptor = descriptor

    def release(self) -> None:
        """Removes the directory when nothing is left in it, then lets the lock go."""
        with _lock:
            _adopting.discard(self.directory)
            if _holds_records(self.directory):
                os.close(self._descriptor)
            else:
                _remove(self.directory, self._descriptor)


def adopt(directory: Path) -> Adoption | None:
    """The directory's lock, if its owner (and any other adopter) is gone; None otherwise, or
    when it is not a private directory of ours (then logged and left alone)."""
    with _lock:
        owned = _owned.get(directory.parent)
        if directory in _adopting or (owned is not None and owned.directory == directory):
            return None
        _adopting.add(directory)
    adoption = None
    try:
        adoption = _lock_if_orphaned(directory)
        return adoption
    finally:
        if adoption is None:
            with _lock:
                _adopting.discard(directory)


def _lock_if_orphaned(directory: Path) -> Adoption | None:
    problem = not_private(directory, directory=True)
    if problem is not None:
        logger.error("spool directory %s not replayed: %s", directory, problem)
        return None
    try:
        descriptor = os.open(directory / OWNER_LOCK, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:  # being made this instant, or removed by its last adopter
        return None
    except OSError as exc:
        logger.error("spool directory %s not replayed: %s", directory, exc)
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # BlockingIOError: its owner lives, or another process is replaying it
        os.close(descriptor)
        return None
    if os.fstat(descriptor).st_nlink == 0:  # emptied and removed by the adopter before us
        os.close(descriptor)
        return None
    logger.warning("spool directory %s left by a process that is gone: replaying it", directory)
    return Adoption(directory, descriptor)


def process_directories(root: Path) -> list[Path]:
    """Every process directory in `root` (this process's own included), oldest name first."""
    try:
        return sorted(path for path in root.iterdir() if path.name.startswith(PREFIX))
    except OSError:
        return []


def _holds_records(directory: Path) -> bool:
    try:
        return any(path.name != OWNER_LOCK for path in directory.iterdir())
    except FileNotFoundError:
        return False


def _remove(directory: Path, descriptor: int) -> None:
    """Unlink the lock while holding it, then the directory: a process that opened the lock just
    before finds it unlinked once it gets it (`st_nlink == 0`) and leaves it."""
    lock = directory / OWNER_LOCK
    try:
        os.unlink(lock)
        try:
            os.rmdir(directory)
        except OSError as exc:  # something was put there meanwhile: adoptable again, later
            os.close(os.open(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            logger.info("spool directory %s kept: %s", directory, exc)
    except OSError as exc:
        logger.warning("spool directory %s not removed: %s", directory, exc)
    finally:
        os.close(descriptor)


def not_private(path: Path, *, directory: bool) -> str | None:
    """Why a spooled file or directory must not be trusted (not ours, writable by others, a
    symlink, the wrong kind), or None."""
    try:
        info = os.lstat(path)
    except OSError as exc:
        return f"cannot stat it: {exc}"
    if directory and not stat.S_ISDIR(info.st_mode):
        return "not a directory (or a symlink)"
    if not directory and not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_uid != os.geteuid():
        return f"owned by uid {info.st_uid}, not by this user"
    if info.st_mode & 0o022:
        return f"group or world writable ({stat.filemode(info.st_mode)})"
    return None
