"""SIGTERM and SIGHUP end a command the way Ctrl-C does.

``timeout``, batch schedulers and closed terminals send SIGTERM or SIGHUP.  Inside
:func:`terminate_on_signals` they raise :class:`Terminated` in the main thread, so every ``finally``
runs as for a KeyboardInterrupt: a Lava run kills its worker's process group and unlinks its
shared-memory segments, a sharded run keeps its finished shards, local Dask workers are closed.
The command line prints one line and exits with ``128 + signal number``.
"""

from __future__ import annotations

import contextlib
import signal
import threading

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):  # noqa: N818  (like KeyboardInterrupt: not an error of the program)
    """The process received ``signum`` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")


def raise_terminated(signum, frame) -> None:
    # Later signals are ignored while the first one unwinds the stack and cleans up.
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_on_signals():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, raise_terminated) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
