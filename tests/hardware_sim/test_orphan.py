"""Cleaning up a Lava worker's group (the caller's kill_group, the orphaned worker's abandon) leaves no
process and no segment behind, even while the group is still making segments, and even when the
worker itself is stuck holding the interpreter lock."""

import ctypes
import glob
import mmap
import multiprocessing as mp
import os
import signal
import time
import uuid

from hardware_sim.lava.orphan import abandon, start_reaper
from hardware_sim.lava.runner import group_members, kill_group, segment_prefix


def make_segments_forever(prefix: str, shm_log: str, kind: str) -> None:
    """Create ``/dev/shm`` segments in a loop: ``logged`` (mapped and named in the log, like Lava's before
    the run prefix), ``mapped`` (only mapped) or ``named`` (carrying the run's prefix, never mapped or logged)."""
    kept = []
    for i in range(100000):
        name = f"{segment_prefix(shm_log) if kind == 'named' else prefix}{kind}_{os.getpid()}_{i}"
        fd = os.open(f"/dev/shm/{name}", os.O_CREAT | os.O_RDWR, 0o600)
        if kind != "named":
            os.ftruncate(fd, 4096)
            kept.append(mmap.mmap(fd, 4096))
        os.close(fd)
        if kind == "logged":
            with open(shm_log, "a") as fh:
                fh.write(name + "\n")
        time.sleep(0.001)


def segments_of(prefix: str, shm_log: str) -> list[str]:
    return glob.glob(f"/dev/shm/{prefix}*") + glob.glob(f"/dev/shm/{segment_prefix(shm_log)}*")


def assert_none_left_but_one_per_child(made: list[str]) -> None:
    """No segment survives but, per child, one without the run's prefix that it may have been stopped
    on between creating and mapping it (neither logged nor mapped yet: the scan cannot see it)."""
    makers = [os.path.basename(path).rsplit("_", 2)[1] for path in made]
    assert not [p for p in made if "_named_" in p], "a segment with the run's prefix was left"
    assert len(set(makers)) == len(makers), f"{len(made)} segments left behind by {len(set(makers))} children"


def worker(prefix: str, shm_log: str) -> None:
    """A group leader whose children make segments until it abandons the run."""
    os.setsid()
    for kind in ("logged", "named", "mapped"):
        if os.fork() == 0:
            make_segments_forever(prefix, shm_log, kind)
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
    made = segments_of(prefix, shm_log)
    try:
        assert proc.exitcode == -9  # abandon() ends by SIGKILL of its own group
        time.sleep(0.1)
        assert group_members(proc.pid) == []
        assert_none_left_but_one_per_child(made)
        assert not run_dir.exists()
    finally:
        for path in made:
            os.unlink(path)


def busy_group(prefix: str, shm_log: str) -> None:
    """A group leader that, with its children, makes segments until it is killed."""
    os.setsid()
    for kind in ("logged", "named"):
        if os.fork() == 0:
            make_segments_forever(prefix, shm_log, kind)
            os._exit(0)
    make_segments_forever(prefix, shm_log, "mapped")


def test_kill_group_unlinks_what_a_busy_group_made_logged_or_only_mapped(tmp_path):
    prefix = f"psm_orphan_test_{uuid.uuid4().hex[:8]}_"
    shm_log = str(tmp_path / "shm")
    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=busy_group, args=(prefix, shm_log))
    proc.start()
    sender.close()
    time.sleep(0.3)
    assert segments_of(prefix, shm_log), "the group made no segment"
    kill_group(proc, receiver, shm_log)
    made = segments_of(prefix, shm_log)
    try:
        assert group_members(proc.pid) == []
        assert_none_left_but_one_per_child(made)
    finally:
        for path in made:
            os.unlink(path)


def stuck_worker(prefix: str, shm_log: str) -> None:
    """A worker like Lava's (own group, reaper, children making segments) whose main thread then
    blocks in C holding the interpreter lock: no Python thread or signal handler of it runs again."""
    parent = os.getppid()
    os.setsid()
    start_reaper(parent, shm_log)
    for kind in ("logged", "named"):
        if os.fork() == 0:
            make_segments_forever(prefix, shm_log, kind)
            os._exit(0)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGHUP, signal.SIGINT})
    ctypes.PyDLL(None).sleep(120)  # a PyDLL call keeps the interpreter lock; no signal ends the sleep
    os._exit(0)


def caller(prefix: str, shm_log: str, sender) -> None:
    """Start the stuck worker, report its pid, and wait to be killed."""
    worker = os.fork()
    if worker == 0:
        stuck_worker(prefix, shm_log)
    sender.send(worker)
    time.sleep(120)


def test_a_killed_caller_leaves_nothing_even_when_its_worker_is_stuck_holding_the_interpreter_lock(tmp_path):
    prefix = f"psm_orphan_test_{uuid.uuid4().hex[:8]}_"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    shm_log = str(run_dir / "shm")
    ctx = mp.get_context("fork")
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=caller, args=(prefix, shm_log, sender))
    proc.start()
    assert receiver.poll(30), "the caller did not start its worker"
    worker = receiver.recv()
    time.sleep(0.5)
    assert segments_of(prefix, shm_log), "the worker's group made no segment"
    alive = len(group_members(worker))
    proc.kill()
    proc.join(10)
    deadline = time.monotonic() + 10
    while group_members(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = group_members(worker)
    made = segments_of(prefix, shm_log)
    try:
        assert alive == 4  # worker, reaper, two children
        assert left == [], f"{len(left)} processes of the worker's group left"
        assert_none_left_but_one_per_child(made)
        assert not run_dir.exists()
    finally:
        for pid in left:
            os.kill(pid, 9)
        for path in made:
            os.unlink(path)
