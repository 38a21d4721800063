"""The Lava worker outlives no parent: when the process that started it dies, it cleans up and ends.

The worker leads its own process group (so the caller can kill it with all Lava processes at once)
and is therefore out of reach of the signals a terminal or a scheduler sends the caller.  If the
caller is killed outright (SIGKILL, an out-of-memory kill) nobody would stop the group.  So the
worker, right after it starts:

- asks Linux for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``) and handles SIGTERM
  by abandoning the run;
- runs a watcher thread that polls ``getppid()`` (covers a parent that died before the ``prctl``,
  and a main thread blocked where no Python signal handler runs).

Abandoning kills the rest of the worker's process group, unlinks every shared-memory segment its
Lava runtime created (their names are logged in ``shm_log``, or still mapped), removes the run's
temporary directory and kills the worker itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2


ABANDONING: list[bool] = []  # non-empty once the run is being abandoned: new segments are unlinked at once
# (a plain list, not a lock-holding Event: abandon() may run in a signal handler that interrupted it)


def abandon(shm_log: str) -> None:
    """Kill the rest of the own process group, unlink every segment it or this process made, remove
    the run's temporary directory, then SIGKILL the group (this process included).

    The order closes the races with processes still building the network: each other member is
    stopped, its mapped segments noted, then killed, all before the log is read; a segment this
    process's own threads make after the flag is set is unlinked by its maker
    (:func:`hardware_sim.lava.runner.log_segments`).
    """
    from hardware_sim.lava.runner import group_members, mapped_segments, unlink_segments

    ABANDONING.append(True)
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


def set_parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send ``sig`` to this process when its parent thread exits (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def watch_parent(parent: int, shm_log: str) -> None:
    """Abandon the run when this process's parent is no longer ``parent`` (see module docstring)."""
    signal.signal(signal.SIGTERM, lambda signum, frame: abandon(shm_log))
    set_parent_death_signal(signal.SIGTERM)

    def poll() -> None:
        while os.getppid() == parent:
            time.sleep(POLL_SECONDS)
        abandon(shm_log)

    if os.getppid() != parent:
        abandon(shm_log)
    threading.Thread(target=poll, name="tripartite-parent-watch", daemon=True).start()
