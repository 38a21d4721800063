"""``make mutation``: mutation testing of the integer arithmetic, the golden simulator and the Lava
schedule with mutmut, in a scratch copy of the tree (the working tree is never touched).

Mutated: ``hardware_sim/fixed_point``, ``hardware_sim/golden``, ``hardware_sim/lava/schedule.py``.
Tests run against each mutant: the fixed-point, golden and schedule tests of the default suite
(Lava-starting and slow tests left out).  Prints the kill rate per module and writes the survivors
to ``benchmarks/results/mutation.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ["hardware_sim/fixed_point/", "hardware_sim/golden/", "hardware_sim/lava/schedule.py"]
TESTS = ["tests/hardware_sim/test_fixed_point.py", "tests/hardware_sim/test_fixed_point_exact.py",
         "tests/hardware_sim/test_golden_steps_exact.py", "tests/hardware_sim/test_golden.py",
         "tests/hardware_sim/test_golden_features.py", "tests/hardware_sim/test_golden_loihi2.py",
         "tests/hardware_sim/test_lava_schedule.py"]
SLOW = ["tests/hardware_sim/test_golden_loihi2.py::test_minilm_fidelity_200_sentences"]


def setup_cfg(sources, tests) -> str:
    lines = ["[mutmut]", "source_paths ="] + [f"    {s}" for s in sources]
    lines += ["also_copy =", "    compiler/", "    runtime/", "    hardware_sim/", "    benchmarks/", "    examples/"]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests]
    lines += ["pytest_add_cli_args =", "    -m", "    not slow and not crosscheck and not lava", "    -p",
              "    no:cacheprovider"] + [f"    --deselect={t}" for t in SLOW]
    return "\n".join(lines) + "\n"


def scratch_copy(work: Path, sources, tests) -> None:
    if work.exists():
        shutil.rmtree(work)
    names = ["compiler", "runtime", "hardware_sim", "tests", "benchmarks", "examples", "pyproject.toml"]
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "results")
    for name in names:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, work / name, ignore=ignore)
        elif src.exists():
            shutil.copy(src, work / name)
    (work / "setup.cfg").write_text(setup_cfg(sources, tests))


def summarise(work: Path, env) -> dict:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, env=env,
                         capture_output=True, text=True).stdout
    status: dict[str, str] = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\w.]+__mutmut_\d+): (.+)$", line)
        if m:
            status[m.group(1)] = m.group(2).strip()
    per_module: dict[str, Counter] = {}
    for name, state in status.items():
        module = name.split(".x")[0].split(".xǁ")[0]
        per_module.setdefault(module, Counter())[state] += 1
    killed = sum(1 for s in status.values() if s == "killed")
    counted = sum(1 for s in status.values() if s in ("killed", "survived", "timeout", "suspicious"))
    timeouts = sum(1 for s in status.values() if s == "timeout")
    return {"mutants": len(status), "killed": killed, "timeouts": timeouts, "counted": counted,
            "kill_rate": (killed + timeouts) / counted if counted else None,
            "per_module": {m: dict(c) for m, c in sorted(per_module.items())},
            "survivors": sorted(n for n, s in status.items() if s == "survived"),
            "no_tests": sorted(n for n, s in status.items() if s == "no tests")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/tripartite-mutation", help="scratch directory")
    parser.add_argument("--sources", default=",".join(SOURCES), help="comma-separated files/folders to mutate")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--summary-only", action="store_true", help="summarise an earlier run in --work")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mutation.json"))
    args = parser.parse_args()
    work = Path(args.work)
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    if not args.summary_only:
        scratch_copy(work, [s for s in args.sources.split(",") if s], TESTS)
        code = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)],
                              cwd=work, env=env).returncode
        if code not in (0, 1):
            print(f"mutmut failed (exit {code}); see {work}", file=sys.stderr)
            return code
    summary = summarise(work, env)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    for module, counts in summary["per_module"].items():
        total = sum(counts.values())
        print(f"{module:55} {counts.get('killed', 0) + counts.get('timeout', 0):5}/{total:<5} killed")
    rate = summary["kill_rate"]
    print(f"kill rate {rate:.1%} of {summary['counted']} mutants ({len(summary['survivors'])} survived); "
          f"details in {args.out}" if rate is not None else "no mutants were run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
