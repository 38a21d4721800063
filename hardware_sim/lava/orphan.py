"""The Lava worker outlives no parent: when the process that started it dies, it cleans up and ends.

The worker leads its own process group (so the caller can kill it with all Lava processes at once)
and is therefore out of reach of the signals a terminal or a scheduler sends the caller.  If the
caller is killed outright (SIGKILL, an out-of-memory kill) nobody would stop the group.  So the
worker, right after it starts:

- asks Linux for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``) and handles SIGTERM
  by abandoning the run;
- runs a watcher thread that polls ``getppid()`` (covers a parent that died before the ``prctl``,
  and a main thread blocked where no Python signal handler runs).

Abandoning unlinks every shared-memory segment the worker's Lava runtime created (their names are
logged in ``shm_log``), removes the run's temporary directory and kills the worker's process group.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.2


def abandon(shm_log: str) -> None:
    """Unlink the logged segments, remove the run's temporary directory, SIGKILL the own process group."""
    from hardware_sim.lava.runner import unlink_segments

    try:
        unlink_segments(shm_log)
        shutil.rmtree(os.path.dirname(shm_log), ignore_errors=True)
    finally:
        os.killpg(os.getpgrp(), signal.SIGKILL)


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
