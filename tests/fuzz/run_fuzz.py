"""Fuzz every loader for a fixed time budget: ``make fuzz`` (``python tests/fuzz/run_fuzz.py``).

Engines: atheris (coverage-guided, libFuzzer) when it is importable, else a seeded random byte
generator.  Each target runs in its own process for ``--seconds``; an input counts as a crash when
the loader raises anything but a one-line TripartiteError, or takes longer than ``--timeout``.
Crashing inputs are written to ``tests/fuzz/crashes/`` (add each as a regression file in
``tests/fuzz/regressions/<target>-*.bin`` once fixed).  The inputs tried per target are printed as a
table and written to ``benchmarks/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))


def load_targets():
    spec = importlib.util.spec_from_file_location("fuzz_targets", HERE / "targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class HangError(Exception):
    pass


def on_alarm(signum, frame):
    raise HangError("input took longer than the time limit")


def check_one(targets, target, data: bytes, scratch: Path) -> str | None:
    """None when the loader accepted the input or refused it with a documented error, else a description."""
    try:
        target.run(data, scratch)
    except HangError as exc:
        return f"hang: {exc}"
    except Exception as exc:  # noqa: BLE001  (everything undocumented is a finding)
        if targets.is_documented(exc):
            return None
        return "".join(traceback.format_exception_only(type(exc), exc)).strip() + "\n" + traceback.format_exc()
    return None


def save_crash(name: str, data: bytes, report: str) -> Path:
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    path = crashes / f"{name}-{hashlib.sha256(data).hexdigest()[:12]}.bin"
    path.write_bytes(data)
    path.with_suffix(".txt").write_text(report)
    return path


def random_engine(name: str, seconds: float, timeout: float, seed: int) -> dict:
    targets = load_targets()
    target = targets.TARGETS[name]
    rng = random.Random(f"{seed}-{name}")
    signal.signal(signal.SIGALRM, on_alarm)
    crashes, tried = 0, 0
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as tmp:
        scratch = Path(tmp)
        target.prepare(scratch)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            data = rng.randbytes(rng.randint(1, 256))
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                report = check_one(targets, target, data, scratch)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            tried += 1
            if report:
                crashes += 1
                print(f"{name}: crash saved to {save_crash(name, data, report)}: {report.splitlines()[0]}",
                      file=sys.stderr)
    return {"engine": "random", "inputs": tried, "crashes": crashes, "seconds": seconds}


def atheris_engine(name: str, seconds: float, timeout: float) -> None:
    """Runs in a child process: libFuzzer ends the process itself (and prints 'Done N runs')."""
    import atheris

    targets = load_targets()
    target = targets.TARGETS[name]
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    target.prepare(scratch)

    def one(data: bytes) -> None:
        try:
            target.run(data, scratch)
        except Exception as exc:
            if not targets.is_documented(exc):
                save_crash(name, data, traceback.format_exc())
                raise

    corpus = HERE / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    atheris.Setup([sys.argv[0], f"-max_total_time={int(seconds)}", f"-timeout={int(timeout)}", "-rss_limit_mb=6000",
                   f"-artifact_prefix={crashes}/{name}-", str(corpus)], one)
    atheris.Fuzz()


def run_target(name: str, args) -> dict:
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if importlib.util.find_spec("atheris") else "random"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--engine", engine,
           "--seconds", str(args.seconds), "--timeout", str(args.timeout), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "MPLBACKEND": "Agg"})
    sys.stderr.write("".join(line + "\n" for line in proc.stderr.splitlines() if "crash" in line.lower()))
    if engine == "random":
        try:
            return json.loads(proc.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            return {"engine": engine, "inputs": 0, "crashes": 1, "error": proc.stderr[-2000:]}
    runs = re.findall(r"Done (\d+) runs", proc.stderr)
    crashed = proc.returncode != 0
    return {"engine": "atheris", "inputs": int(runs[-1]) if runs else None, "crashes": int(crashed),
            "seconds": args.seconds, **({"log": proc.stderr[-1500:]} if crashed else {})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="budget per target (default 60)")
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds one input may take")
    parser.add_argument("--targets", default="", help="comma-separated target names (default: all)")
    parser.add_argument("--engine", choices=("auto", "atheris", "random"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "fuzz.json"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        if args.engine == "atheris":
            atheris_engine(args.child, args.seconds, args.timeout)
            return 0
        print(json.dumps(random_engine(args.child, args.seconds, args.timeout, args.seed)))
        return 0
    names = [n for n in args.targets.split(",") if n] or list(load_targets().TARGETS)
    results = {}
    print(f"{'target':12} {'engine':8} {'inputs':>9} {'crashes':>8}")
    for name in names:
        results[name] = run_target(name, args)
        r = results[name]
        print(f"{name:12} {r['engine']:8} {str(r['inputs']):>9} {r['crashes']:>8}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"seconds_per_target": args.seconds, "targets": results}, indent=2))
    return 1 if any(r["crashes"] for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
