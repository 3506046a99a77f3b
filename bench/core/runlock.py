"""One training per run: a lock in the run's folder, held while the run trains.

Before a run trains (``bench.cli.train``, a sweep trial, a cluster node), :func:`hold` takes an
exclusive lock on ``<run folder>/run.lock`` with ``filelock.FileLock`` (``flock``/``fcntl``
locks, kept by the kernel or, on shared storage, by the file server) and writes who holds it
(host, process, start time, last epoch) to ``run.owner.json`` beside it. A process that finds
the lock held skips the run with :class:`RunLocked`, whose message names the holder. Lock
files stay in the folder (deleting a lock file that others may be opening would let two
processes hold "the" lock); git ignores them.

A lock cannot outlive its holder: the kernel releases it when the process ends, however it
ends (``kill -9`` included), and an NFS server releases the locks of a client that stops
renewing its lease (NFSv4: the server's lease time, typically 90 s), which is the heartbeat on
shared storage. A run whose previous holder is gone is therefore simply free; the next holder
says that it takes over from it (the owner file names the process that did not finish). A
file system without lock support (some FUSE mounts) is refused with one line rather than
trained on unguarded.
"""

from __future__ import annotations

import errno
import json
import os
import platform
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

from bench.core.errors import BenchError

LOCK_NAME = "run.lock"
OWNER_NAME = "run.owner.json"


class RunLocked(BenchError):
    """The run is being trained by another live process."""

    def __init__(self, folder: Path, owner: dict | None):
        self.folder, self.owner = folder, owner or {}
        super().__init__(f"{folder} is being trained by {describe(owner)}; not trained twice "
                         "(run the same command once that process has finished: a finished record is reused)")


def describe(owner: dict | None) -> str:
    if not owner:
        return "another process"
    epoch = f", last epoch {owner['epoch']} at {owner['updated_at']}" if owner.get("epoch") else ""
    return f"process {owner.get('pid')} on {owner.get('host')} (since {owner.get('started_at')}{epoch})"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_owner(folder: Path) -> dict | None:
    try:
        return json.loads((Path(folder) / OWNER_NAME).read_text())
    except (OSError, ValueError):
        return None


def _write_owner(folder: Path, owner: dict) -> None:
    tmp = Path(folder) / f".{OWNER_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(owner))
    os.replace(tmp, Path(folder) / OWNER_NAME)


def is_locked(folder: Path) -> bool:
    """Whether a live process holds the run's lock now (the lock is not kept)."""
    from filelock import FileLock, Timeout
    if not (Path(folder) / LOCK_NAME).exists():
        return False
    try:
        with FileLock(str(Path(folder) / LOCK_NAME), timeout=0):
            return False
    except Timeout:
        return True


@contextmanager
def hold(folder: Path, log: Callable[[str], None] = print) -> Iterator[Callable[[int], None]]:
    """Hold the run's lock for the ``with`` block, or raise :class:`RunLocked`.

    Yields ``touch(epoch)``, which records the last finished epoch in the owner file (for the
    messages of processes that find the run locked). Logs a line when it takes over from a
    holder that did not finish.
    """
    from filelock import FileLock, Timeout
    folder = Path(folder)
    lock = FileLock(str(folder / LOCK_NAME), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(folder, read_owner(folder)) from None
    except OSError as err:
        if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
            raise BenchError(f"{folder}: this file system does not support file locks ({err.strerror}); put the "
                             "results (--results / --storage) on a local disk or an NFS mount with locking") from None
        raise
    try:
        previous = read_owner(folder)
        if previous is not None:
            log(f"taking over {folder}: its previous holder, {describe(previous)}, stopped before finishing")
        owner = {"host": platform.node(), "pid": os.getpid(), "started_at": now()}
        _write_owner(folder, owner)

        def touch(epoch: int) -> None:
            _write_owner(folder, {**owner, "epoch": epoch, "updated_at": now()})

        yield touch
        (folder / OWNER_NAME).unlink(missing_ok=True)  # finished or stopped cleanly: nobody to take over from
    finally:
        lock.release()
