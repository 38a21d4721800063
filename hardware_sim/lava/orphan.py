"""The Lava worker outlives no caller: when the process that started it dies, a reaper cleans up.

The worker leads its own process group (so the caller can kill it with all Lava processes at once)
and is therefore out of reach of the signals a terminal or a scheduler sends the caller.  If the
caller is killed outright (SIGKILL, an out-of-memory kill) nobody would stop the group.  So the
worker, right after it starts and while it is still single-threaded, forks a **reaper**: a process
in the worker's group that runs no Lava code and holds no lock the worker's threads could hold.  It
waits on two process file descriptors (``pidfd_open``), the caller's and the worker's:

- the caller ends first: the reaper abandons the run (:func:`abandon`);
- the worker ends first while the caller lives: the run ended (or the caller is cleaning up), and the
  reaper exits without touching anything.

Nothing of this depends on the worker's state: a worker blocked holding the interpreter lock, or
deadlocked in Lava's runtime, is stopped and killed like any other member of its group.

Abandoning stops every other member of the group, notes the segments each has mapped, kills them,
then unlinks those segments and every one named in ``shm_log`` (the worker logs each segment Lava
creates), removes the run's temporary directory, and finally kills the whole group, the reaper
included.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import time

POLL_SECONDS = 0.2  # only where pidfd_open is missing (Linux < 5.3)


def abandon(shm_log: str) -> None:
    """Kill the rest of the own process group, unlink every segment it or this process made, remove
    the run's temporary directory, then SIGKILL the group (this process included).

    Each other member is stopped before its mappings are read and killed after, so no member makes a
    segment between the scan and its death; the loop repeats until no other member is left (a member
    forked while the others were being stopped is caught on the next pass).
    """
    from hardware_sim.lava.runner import group_members, mapped_segments, unlink_segments

    me, group = os.getpid(), os.getpgrp()
    try:
        mapped: set[str] = set()
        for _ in range(100):
            others = [pid for pid in group_members(group) if pid != me]
            if not others:
                break
            signal_each(others, signal.SIGSTOP)  # stopped, they make no segment the scan below misses
            mapped |= mapped_segments(others)
            signal_each(others, signal.SIGKILL)
            time.sleep(0.01)
        unlink_segments(shm_log, mapped | mapped_segments([me]))
        shutil.rmtree(os.path.dirname(shm_log), ignore_errors=True)
    finally:
        os.killpg(group, signal.SIGKILL)


def signal_each(pids, sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def start_reaper(parent: int, shm_log: str) -> None:
    """Fork the reaper that abandons the run when ``parent`` (the caller) ends (module docstring).

    Call it first thing in the worker, before any thread starts; it returns in the worker only.
    """
    worker = os.getpid()
    if os.fork() == 0:
        try:
            reap(parent, worker, shm_log)
        finally:
            os._exit(0)


def reap(parent: int, worker: int, shm_log: str) -> None:
    """The reaper's life: wait until the caller or the worker ends; abandon the run if the caller did."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    detach_descriptors()  # the worker's pipes reach EOF when the worker ends, not when the reaper does
    caller_fd, worker_fd = open_pidfd(parent), open_pidfd(worker)
    if caller_fd is None or worker_fd is None:
        poll_until_one_ends(parent, worker)
    elif parent_of(worker) == parent:  # both alive now: the descriptors name the right processes
        select.select([caller_fd, worker_fd], [], [])
    if not caller_alive(parent, caller_fd):
        abandon(shm_log)


def detach_descriptors() -> None:
    """Close every inherited descriptor but 0-2, and point those at /dev/null."""
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def open_pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def parent_of(pid: int) -> int | None:
    """``pid``'s parent from /proc, or None once ``pid`` has ended."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] in ("Z", "X") else int(fields[1])


def caller_alive(parent: int, caller_fd: int | None) -> bool:
    if caller_fd is not None:
        return not select.select([caller_fd], [], [], 0)[0]
    return parent_of(parent) is not None


def poll_until_one_ends(parent: int, worker: int) -> None:
    while parent_of(worker) == parent:
        time.sleep(POLL_SECONDS)
