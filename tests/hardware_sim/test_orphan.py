"""Cleaning up a Lava worker's group (the caller's kill_group, the orphaned worker's abandon) leaves no
process and no segment behind, even while the group is still making segments."""

import glob
import mmap
import multiprocessing as mp
import os
import time
import uuid

from hardware_sim.lava.orphan import abandon
from hardware_sim.lava.runner import group_members, kill_group


def make_segments_forever(prefix: str, shm_log: str, logged: bool) -> None:
    """Create, map and keep ``/dev/shm`` segments in a loop (logged ones like Lava's, or only mapped)."""
    kept = []
    for i in range(100000):
        name = f"{prefix}{'logged' if logged else 'mapped'}_{os.getpid()}_{i}"
        fd = os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_RDWR, 0o600)
        os.ftruncate(fd, 4096)
        kept.append(mmap.mmap(fd, 4096))
        os.close(fd)
        if logged:
            with open(shm_log, "a") as fh:
                fh.write(name + "\n")
        time.sleep(0.001)


def assert_none_left_but_one_unmapped(prefix: str, made: list[str]) -> None:
    """No logged segment survives, nor a mapped-only one but the one its child may have been stopped
    on between creating and mapping it (the only race the scan cannot see; each child makes ~300)."""
    logged = [p for p in made if "_logged_" in p]
    mapped_only = [p for p in made if "_mapped_" in p]
    assert logged == [] and len(mapped_only) <= 1, f"{len(made)} segments left behind"


def worker(prefix: str, shm_log: str) -> None:
    """A group leader whose children make segments until it abandons the run."""
    os.setsid()
    for logged in (True, True, False):
        if os.fork() == 0:
            make_segments_forever(prefix, shm_log, logged)
            os._exit(0)
    time.sleep(0.3)
    abandon(shm_log)


def test_abandon_kills_the_group_first_then_unlinks_logged_and_mapped_segments(tmp_path):
    prefix = f"psm_orphan_test_{uuid.uuid4().hex[:8]}_"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shm_log = str(run_dir / "shm")
    proc = mp.get_context("fork").Process(target=worker, args=(prefix, shm_log))
    proc.start()
    proc.join(30)
    made = glob.glob(f"/dev/shm/{prefix}*")
    try:
        assert proc.exitcode == -9  # abandon() ends by SIGKILL of its own group
        time.sleep(0.1)
        assert group_members(proc.pid) == []
        assert_none_left_but_one_unmapped(prefix, made)
        assert not run_dir.exists()
    finally:
        for path in made:
            os.unlink(path)


def busy_group(prefix: str, shm_log: str) -> None:
    """A group leader that, with its children, makes segments until it is killed."""
    os.setsid()
    for logged in (True, False):
        if os.fork() == 0:
            make_segments_forever(prefix, shm_log, logged)
            os._exit(0)
    make_segments_forever(prefix, shm_log, False)


def test_kill_group_unlinks_what_a_busy_group_made_logged_or_only_mapped(tmp_path):
    prefix = f"psm_orphan_test_{uuid.uuid4().hex[:8]}_"
    shm_log = str(tmp_path / "shm")
    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=busy_group, args=(prefix, shm_log))
    proc.start()
    sender.close()
    time.sleep(0.3)
    assert glob.glob(f"/dev/shm/{prefix}*"), "the group made no segment"
    kill_group(proc, receiver, shm_log)
    made = glob.glob(f"/dev/shm/{prefix}*")
    try:
        assert group_members(proc.pid) == []
        assert_none_left_but_one_unmapped(prefix, made)
    finally:
        for path in made:
            os.unlink(path)
