"""Shared pytest configuration: keep plots headless and temp files out of the tree; the ``clean``
fixture of the Lava tests."""

import os
import time

import pytest

os.environ.setdefault("MPLBACKEND", "Agg")


def children() -> set[int]:
    """Processes whose parent is this one (zombies included)."""
    me, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                found.add(int(entry))
    return found


def segments() -> set[str]:
    return {n for n in os.listdir("/dev/shm") if n.startswith("psm_")}


@pytest.fixture
def clean():
    """Assert that the test leaves no child process and no new shared-memory segment."""
    before_children, before_segments = children(), segments()
    yield
    new = set()
    for _ in range(20):  # segments of other programs running Lava at the same time come and go
        new = segments() - before_segments
        if not new and children() <= before_children:
            break
        time.sleep(0.25)
    assert children() <= before_children
    assert not new
