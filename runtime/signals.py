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
import sys
import threading

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(BaseException):  # noqa: N818  (like KeyboardInterrupt: not an error of the program)
    """The process received ``signum`` (SIGTERM or SIGHUP)."""

    def __init__(self, signum: int):
        self.signum = int(signum)
        self.name = signal.Signals(signum).name
        super().__init__(f"stopped by {self.name}")


RECEIVED: list[int] = []  # signals handled inside the current block, in order


def raise_terminated(signum, frame) -> None:
    # Later signals are ignored while the first one unwinds the stack and cleans up.
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    RECEIVED.append(int(signum))
    raise Terminated(signum)


def check_terminated() -> None:
    """Raise :class:`Terminated` again if a signal came and the run goes on.

    A Python signal handler runs at whichever bytecode the main thread has reached; if that is a
    ``__del__`` method or a weakref callback (a temporary directory's clean-up, a pipe's close),
    the interpreter prints the exception and drops it.  Callers check at safe points (between
    shards, at the end of the block) so such a signal still ends the command.
    """
    if RECEIVED:
        raise Terminated(RECEIVED[0])


@contextlib.contextmanager
def terminate_on_signals():
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    RECEIVED.clear()
    previous = {sig: signal.signal(sig, raise_terminated) for sig in HANDLED}
    previous_hook = sys.unraisablehook

    def unraisable(info) -> None:  # a dropped Terminated is raised again by check_terminated: no traceback
        if not isinstance(info.exc_value, Terminated):
            previous_hook(info)

    sys.unraisablehook = unraisable
    try:
        yield
        check_terminated()
    finally:
        sys.unraisablehook = previous_hook
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        RECEIVED.clear()
