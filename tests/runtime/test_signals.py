"""SIGTERM, SIGHUP and SIGKILL of a running command leave no process and no shared-memory segment
behind; an interrupted sharded run resumes to the same bytes as an uninterrupted one.

Each command runs as a subprocess carrying a unique environment tag, inherited by every process it
starts (the Lava worker and its Lava processes, Dask workers); the tests count the live tagged
processes (with their descendants and whatever shares their groups or sessions), and the ``/dev/shm/psm_*``
segments those processes had mapped, after the signal.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models import LlamaConfig, random_bert, random_llama

pytestmark = pytest.mark.lava
ROOT = Path(__file__).resolve().parents[2]
TEXT = " ".join("abcdefghijklmnopqrstuvwxyz"[i % 26] for i in range(28))


@pytest.fixture(scope="module")
def files(tmp_path_factory, tokenized):
    root = tmp_path_factory.mktemp("signals")
    graph = tokenized(random_bert(seed=5))
    compile_model(graph, max_tokens=32, precision="float32").save(root / "bert.tpn")
    (root / "texts.txt").write_text("\n".join([TEXT] * 8) + "\n")
    (root / "many.txt").write_text("\n".join([TEXT] * 64) + "\n")  # sixteen shards of 4
    (root / "long.txt").write_text("\n".join([TEXT] * 256) + "\n")  # 40 s on Lava fused, more on fine
    config = LlamaConfig(vocab_size=31, num_hidden_layers=1, max_position_embeddings=512)
    llama = tokenized(random_llama(config, seed=4))
    compile_model(llama, max_tokens=400).save(root / "llama.tpn")
    (root / "four.txt").write_text("\n".join(TEXT.split()[i:] and " ".join(TEXT.split()[i:]) for i in range(4)) + "\n")
    return root


def process_table() -> dict[int, tuple[int, int, int, bytes]]:
    """Live (not zombie) processes: pid -> (parent, process group, session, environment)."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        if fields[0] != "Z":
            table[int(entry)] = (int(fields[1]), int(fields[2]), int(fields[3]), environ)
    return table


SEEN_GROUPS: dict[str, set[int]] = {}  # tag -> process groups and sessions its processes have led


def tagged(tag: str) -> list[int]:
    """Live processes of the tagged command: those whose environment carries ``tag``, their descendants,
    and those in a process group or session any of them was seen in.  (A Dask worker that sets its
    title with setproctitle overwrites its environment block, and the Lava worker it forks inherits
    that block and starts a session of its own; an orphan keeps its group and session.)"""
    table = process_table()
    seen = SEEN_GROUPS.setdefault(tag, set())
    ours = {pid for pid, (_, pgid, sid, environ) in table.items()
            if tag.encode() in environ or pgid in seen or sid in seen}
    grown = True
    while grown:
        children = {pid for pid, (parent, *_) in table.items() if parent in ours} - ours
        ours |= children
        grown = bool(children)
    seen |= {table[pid][1] for pid in ours} | {table[pid][2] for pid in ours}
    return sorted(ours)


def mapped_segments(pids) -> set[str]:
    names = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as fh:
                names |= {line.split("/dev/shm/")[1].split()[0] for line in fh if "/dev/shm/psm_" in line}
        except OSError:
            continue
    return names


def start(tag: str, *args) -> subprocess.Popen:
    """The command in a session of its own; its stderr goes to a file (a pipe nobody reads while the
    test polls could fill up and stall the command)."""
    env = {**os.environ, "TRIPARTITE_SIGNAL_TEST": tag}
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    proc.err_file = err
    return proc


def finish(proc: subprocess.Popen, timeout: float) -> str:
    """Wait for ``proc``; its stderr."""
    proc.wait(timeout=timeout)
    proc.err_file.seek(0)
    return proc.err_file.read().decode(errors="replace")


def wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    return None


def wait_for_lava(proc, tag: str) -> set[str]:
    """The segments of the tagged processes once Lava is running (at least one segment mapped)."""
    segments = wait_for(lambda: proc.poll() is None and mapped_segments(tagged(tag)), 120)
    assert segments, f"Lava did not start: {finish(proc, 30)[-500:]}"
    time.sleep(0.3)
    return segments | mapped_segments(tagged(tag))


def assert_nothing_left(tag: str, segments: set[str], seconds: float = 15) -> None:
    left = wait_for(lambda: not tagged(tag) and not any(os.path.exists(f"/dev/shm/{s}") for s in segments) or None,
                    seconds)
    assert left, (f"left behind: {len(tagged(tag))} processes, "
                  f"{sum(os.path.exists(f'/dev/shm/{s}') for s in segments)} segments")


@pytest.mark.parametrize("granularity, sig", [("fused", signal.SIGTERM), ("fine", signal.SIGTERM),
                                              ("fused", signal.SIGHUP)])
def test_signal_stops_a_lava_run_like_ctrl_c(files, tmp_path, granularity, sig):
    tag = uuid.uuid4().hex
    proc = start(tag, "run", files / "bert.tpn", "--text-file", files / "long.txt", "--backend", "lava",
                 "--granularity", granularity, "--workers", "1", "--shard-size", "256", "-o", tmp_path / "out.npz")
    segments = wait_for_lava(proc, tag)
    proc.send_signal(sig)
    err = finish(proc, 60)
    assert proc.returncode == 128 + sig
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"tripartite run: stopped by {signal.Signals(sig).name}"]
    assert_nothing_left(tag, segments)


@pytest.mark.parametrize("granularity", ["fused", "fine"])
def test_killed_parent_leaves_no_lava_worker(files, tmp_path, granularity):
    """The run takes ~40 s: a worker that did not notice its parent's death would still be running after
    the 10 s given to the cleanup (a busy machine slows a fine run's cleanup of ~150 processes)."""
    tag = uuid.uuid4().hex
    proc = start(tag, "run", files / "bert.tpn", "--text-file", files / "long.txt", "--backend", "lava",
                 "--granularity", granularity, "--workers", "1", "--shard-size", "256", "-o", tmp_path / "out.npz")
    segments = wait_for_lava(proc, tag)
    proc.kill()
    finish(proc, 30)
    assert_nothing_left(tag, segments, seconds=10)


def test_killed_parent_leaves_no_lava_session(files, tmp_path):
    """A generation on Lava keeps one session up for the whole text (hardware_sim/lava/stream.py)."""
    tag = uuid.uuid4().hex
    proc = start(tag, "generate", files / "llama.tpn", "--text", "a b c", "--backend", "lava",
                 "--max-new-tokens", "390", "--min-new-tokens", "390", "-o", tmp_path / "gen.npz")
    segments = wait_for_lava(proc, tag)
    proc.kill()
    finish(proc, 30)
    assert proc.returncode == -signal.SIGKILL  # it was still generating
    assert_nothing_left(tag, segments, seconds=10)


def test_signal_stops_lava_runs_inside_dask_workers(files, tmp_path):
    tag = uuid.uuid4().hex
    proc = start(tag, "run", files / "bert.tpn", "--text-file", files / "long.txt", "--backend", "lava",
                 "--workers", "2", "--shard-size", "16", "-o", tmp_path / "out.npz")
    segments = wait_for_lava(proc, tag)
    proc.send_signal(signal.SIGTERM)
    finish(proc, 60)
    assert proc.returncode == 128 + signal.SIGTERM
    assert_nothing_left(tag, segments)


def test_group_killed_halfway_resumes_to_the_same_bytes(files, tmp_path):
    tag = uuid.uuid4().hex
    out = tmp_path / "out.npz"
    args = ["run", files / "bert.tpn", "--text-file", files / "many.txt", "--backend", "lava", "--workers", "1",
            "--shard-size", "4", "-o", out]
    proc = start(tag, *args)
    manifest = tmp_path / "out.npz.shards" / "manifest.json"

    def one_done():
        if not manifest.exists():
            return False
        return any(e["status"] == "done" for e in json.loads(manifest.read_text())["shards"].values())

    assert wait_for(one_done, 120), finish(proc, 30)[-500:]
    os.killpg(proc.pid, signal.SIGTERM)
    finish(proc, 60)
    assert proc.returncode == 128 + signal.SIGTERM and not out.exists()
    done = {k for k, e in json.loads(manifest.read_text())["shards"].items() if e["status"] == "done"}
    assert 1 <= len(done) < 16  # a shard or two may finish between the check and the signal
    kept = {p.name: p.stat().st_mtime_ns for p in manifest.parent.glob("shard-*.npz")}
    resume = start(tag, *args, "--resume")
    seen_kept = []

    def finished():
        if manifest.exists():  # the kept shards are never rewritten
            seen_kept.append(all(p.stat().st_mtime_ns == t for n, t in kept.items()
                                 if (p := manifest.parent / n).exists()))
        return resume.poll() is not None

    wait_for(finished, 180)
    assert resume.wait(timeout=5) == 0 and all(seen_kept)
    reference = tmp_path / "ref.npz"
    full = start(tag, *args[:-1], reference)
    assert full.wait(timeout=180) == 0
    assert out.read_bytes() == reference.read_bytes()
    with np.load(out, allow_pickle=False) as data:
        assert data["hidden"].shape[0] == 64


def test_a_signal_during_cleanup_waits_until_the_cleanup_is_done():
    """The Lava runner's cleanup holds SIGTERM (as Ctrl-C and SIGHUP) and delivers it afterwards."""
    from hardware_sim.lava.runner import signals_held

    steps = []

    def handler(signum, frame):
        steps.append("handler")
        raise RuntimeError("stopped")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        with pytest.raises(RuntimeError, match="stopped"):
            with signals_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                steps.append("cleanup done")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert steps == ["cleanup done", "handler"]
    assert signal.getsignal(signal.SIGTERM) is previous


class SignalsDuringFinalisation:
    """Sends ``sig`` to this process from its ``__del__``, where a raised exception is dropped."""

    def __init__(self, sig):
        self.sig = sig

    def __del__(self):
        os.kill(os.getpid(), self.sig)
        for _ in range(1000):  # the handler runs at one of these bytecodes, inside __del__
            pass


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_signal_arriving_inside_a_finaliser_still_ends_the_block(sig, capsys):
    """The handler's exception is dropped inside ``__del__``; the block still ends with Terminated,
    and nothing is printed for the dropped one."""
    from runtime.signals import Terminated, terminate_on_signals

    previous = signal.getsignal(sig)
    steps = []
    with pytest.raises(Terminated) as caught:
        with terminate_on_signals():
            SignalsDuringFinalisation(sig)  # dropped at once: __del__ runs here
            steps.append("went on")
    assert steps == ["went on"] and caught.value.signum == sig
    assert capsys.readouterr().err == ""
    assert signal.getsignal(sig) is previous



def test_a_sharded_run_stops_at_the_next_shard_after_a_dropped_signal(files, tmp_path, monkeypatch, capsys):
    """The first shard's work drops a SIGTERM inside a finaliser: the run stores that shard, stops
    before the second, keeps it for --resume and exits 143 with the one line."""
    from runtime.cli import main
    from runtime.shards import executor

    real = executor.run_shard
    calls = []

    def first_drops_a_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            SignalsDuringFinalisation(signal.SIGTERM)
        return real(*args, **kwargs)

    monkeypatch.setattr(executor, "run_shard", first_drops_a_signal)
    out = tmp_path / "out.npz"
    code = main(["run", str(files / "bert.tpn"), "--text-file", str(files / "texts.txt"), "--backend", "golden",
                 "--workers", "1", "--shard-size", "2", "-o", str(out)])
    assert code == 128 + signal.SIGTERM and len(calls) == 1 and not out.exists()
    manifest = json.loads((tmp_path / "out.npz.shards" / "manifest.json").read_text())
    assert [e["status"] for e in manifest["shards"].values()] == ["done"]
    assert capsys.readouterr().err.strip().splitlines()[-1] == "tripartite run: stopped by SIGTERM"
