"""Recompute's processes: one run of a store at a time, and workers that end with their run.

The run lock is an OS lock on a file beside the store, `<store>-recompute.lock` (flock on
POSIX): the kernel releases it when the process holding it ends in any way, `kill -9`
included, so the file left on disk never blocks a later run. The lock is as good as the file
system's locks: on a local disk it is exact; on a network share it may not be seen from
another machine, and SQLite's WAL mode needs every process on one machine anyway
(docs/store.md, "One run at a time").

A worker ends with the run that started it: on Linux the kernel kills it when its parent
ends (prctl PR_SET_PDEATHSIG); elsewhere a thread of the worker watches the parent.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from progressor.errors import ProgressorError

#: The lock file's name is the store's with this added (beside -wal and -shm).
LOCK_SUFFIX = "-recompute.lock"

_RETRY_EVERY = 0.2  # seconds between tries while waiting for another run to end
_WATCH_EVERY = 0.5  # seconds between a worker's looks at its parent (where no prctl)
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class RecomputeRunning(ProgressorError):
    """Another recompute of the same store holds its run lock."""


@dataclass(frozen=True)
class RunLock:
    """The run lock of one store, held: `fd` is the open lock file (closing it releases)."""

    path: Path
    fd: int


def lock_path(store_path: str | Path) -> Path:
    """The lock file of the store at `store_path`."""
    return Path(f"{store_path}{LOCK_SUFFIX}")


@contextmanager
def run_lock(store_path: str | Path, wait: float = 0.0) -> Iterator[RunLock]:
    """Hold the store's run lock; if another run holds it, wait up to `wait` seconds for it
    to end, then raise RecomputeRunning naming that run's process and start."""
    path = lock_path(store_path)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise ProgressorError(f"{path}: cannot open the recompute lock: {exc.strerror}") from None
    try:
        _acquire(fd, path, store_path, wait)
        _note_holder(fd)
        yield RunLock(path, fd)
    finally:
        os.close(fd)  # releases the lock (a kill releases it the same way)


def _acquire(fd: int, path: Path, store_path: str | Path, wait: float) -> None:
    deadline = time.monotonic() + wait
    while not _try_lock(fd, path):
        left = deadline - time.monotonic()
        if left <= 0:
            waited = f" after waiting {wait:g} s" if wait else ""
            raise RecomputeRunning(
                f"another recompute of {store_path} is running{waited} ({_holder(fd)}); "
                "this run did nothing: run it again when that one has ended, or let it "
                "wait (--wait SECONDS)"
            )
        time.sleep(min(_RETRY_EVERY, left))


def _note_holder(fd: int) -> None:
    """Write who holds the lock into the file: only for the message of a run that finds it
    held (the lock itself is the kernel's, not the file's content)."""
    since = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, f"pid {os.getpid()} since {since}".encode())


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode(errors="replace").strip() or "process not known"
    except OSError:  # Windows: the holder's locked byte cannot be read
        return "process not known"


if sys.platform == "win32":
    import msvcrt

    def _try_lock(fd: int, path: Path) -> bool:
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def _try_lock(fd: int, path: Path) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError as exc:  # e.g. ENOLCK: a file system without locks
            raise ProgressorError(f"{path}: cannot lock: {exc.strerror}") from None
        return True


@contextmanager
def sigint_held() -> Iterator[None]:
    """Ctrl-C held back while worker processes are forked: a forked worker inherits the mask
    and ignores Ctrl-C before it lets it through (die_with_parent), so that a Ctrl-C at that
    moment is no KeyboardInterrupt traceback from a worker; the parent gets it afterwards."""
    if not hasattr(signal, "pthread_sigmask"):  # (Windows: workers are spawned, not forked)
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


# -- a worker's lifetime (called in the worker process) ----------------------------------------


def die_with_parent(parent: int, inherited_lock: int | None) -> None:
    """Make this worker end when the process `parent` ends, however it ends.

    `inherited_lock` is the run lock's descriptor when the worker was forked: closed here, so
    that the lock goes with the parent alone.
    """
    if inherited_lock is not None:
        os.close(inherited_lock)
    # Ctrl-C reaches the whole process group: the parent alone handles it (and stops the pool).
    # It was held back since the fork (sigint_held): ignored first, then let through.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if not _parent_death_signal():
        threading.Thread(target=_watch, args=(parent,), name="parent-watch", daemon=True).start()
    if os.getppid() != parent:  # the parent ended before the signal was asked for
        os._exit(1)


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent ends; whether it could.

    The kernel sends it when the parent *thread* that forked this process ends: the thread
    that calls recompute, which waits for the pool to shut down before it returns.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _watch(parent: int) -> None:
    """The portable fallback: end this process once its parent has gone. A POSIX orphan is
    adopted (another parent pid); on Windows the parent's handle tells."""
    process = multiprocessing.parent_process()
    while os.getppid() == parent and (process is None or process.is_alive()):
        time.sleep(_WATCH_EVERY)
    os._exit(1)
