"""``make mutation``: mutation testing of the integer arithmetic, the golden simulator and the Lava
schedule with mutmut, in scratch copies of the committed tree (the working tree is never touched).

Three groups, each run on its own (``--groups``) so one can be re-run without the others:
``fixed_point`` (``hardware_sim/fixed_point``), ``golden`` (``hardware_sim/golden``) and ``schedule``
(``hardware_sim/lava/schedule.py``).  Tests run against each mutant: the fixed-point, golden and
schedule tests of the default suite (Lava-starting and slow tests left out); mutmut runs only the
tests that call the mutated function.

The kill rate counts every mutant: killed (or timed out) over all, mutants no test reaches counted
as not killed.  Survivors judged equivalent (``tools/mutation_judged.py``, each with its reason) are
listed apart but still count as not killed.  Results go to ``benchmarks/results/mutation.json``; a
run of some groups keeps the others' earlier results there.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutation_judged import JUDGED  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {"fixed_point": ["hardware_sim/fixed_point/"], "golden": ["hardware_sim/golden/"],
          "schedule": ["hardware_sim/lava/schedule.py"]}
TESTS = ["tests/hardware_sim/test_fixed_point.py", "tests/hardware_sim/test_fixed_point_exact.py",
         "tests/hardware_sim/test_golden_steps_exact.py", "tests/hardware_sim/test_golden.py",
         "tests/hardware_sim/test_golden_features.py", "tests/hardware_sim/test_golden_loihi2.py",
         "tests/hardware_sim/test_lava_schedule.py", "tests/hardware_sim/test_mutation_fixed_point.py",
         "tests/hardware_sim/test_golden_learned.py", "tests/hardware_sim/test_learned_fixed.py",
         "tests/hardware_sim/test_learned_fixed_steps.py", "tests/runtime/test_session.py",
         "tests/hardware_sim/test_mutation_schedule.py", "tests/hardware_sim/test_mutation_golden.py",
         "tests/hardware_sim/test_fixed_fast_paths.py", "tests/hardware_sim/test_mutation_learned.py",
         "tests/hardware_sim/test_mutation_golden_runs.py", "tests/hardware_sim/test_mutation_schedule_plan.py",
         "tests/hardware_sim/test_mutation_fixed_point_edges.py", "tests/hardware_sim/test_band_fixed.py",
         "tests/hardware_sim/test_band_counts.py"]
SLOW = ["tests/hardware_sim/test_golden_loihi2.py::test_minilm_fidelity_200_sentences",
        # these draw their data from their module's random generator after whichever tests ran before them,
        # so their "some values saturate" checks depend on the subset of tests mutmut runs
        "tests/hardware_sim/test_learned_fixed_steps.py::test_logits_step_bit_exact",
        "tests/hardware_sim/test_fixed_fast_paths.py::test_synapse_step_with_and_without_the_float_product"]
KILLED = ("killed", "timeout")


def setup_cfg(sources, tests) -> str:
    lines = ["[mutmut]", "source_paths ="] + [f"    {s}" for s in sources]
    lines += ["also_copy =", "    compiler/", "    runtime/", "    hardware_sim/", "    benchmarks/", "    examples/"]
    lines += ["pytest_add_cli_args_test_selection ="] + [f"    {t}" for t in tests if (ROOT / t).exists()]
    lines += ["pytest_add_cli_args =", "    -m", "    not slow and not crosscheck and not lava", "    -p",
              "    no:cacheprovider"] + [f"    --deselect={t}" for t in SLOW]
    return "\n".join(lines) + "\n"


def scratch_copy(work: Path, sources, tests) -> None:
    """The committed tree (HEAD) in ``work``: edits in progress in the working tree do not reach the run."""
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    names = [n for n in ("compiler", "runtime", "hardware_sim", "tests", "benchmarks", "examples", "pyproject.toml")
             if (ROOT / n).exists()]
    archive = subprocess.run(["git", "archive", "HEAD", *names], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(work)], input=archive, check=True)
    (work / "setup.cfg").write_text(setup_cfg(sources, tests))
    (work / "COMMIT").write_text(git_head())


def statuses(work: Path, env) -> dict[str, str]:
    """Mutant name -> mutmut's verdict (killed, survived, no tests, timeout, ...)."""
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=work, env=env,
                         capture_output=True, text=True).stdout
    found = (re.match(r"\s*([\w.ǁ]+__mutmut_\d+): (.+)$", line) for line in out.splitlines())
    return {m.group(1): m.group(2).strip() for m in found if m}


def mutant_diffs(work: Path, sources) -> dict[str, list[str]]:
    """Mutant name -> the changed lines (``-`` original, ``+`` mutant), read from mutmut's mutated copies."""
    diffs: dict[str, list[str]] = {}
    for source in sources:
        base = work / "mutants" / source
        for path in sorted(base.rglob("*.py") if base.is_dir() else [base]):
            text = path.read_text()
            lines = text.splitlines()
            module = ".".join(path.relative_to(work / "mutants").with_suffix("").parts)
            funcs = {n.name: n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)}
            for name, node in funcs.items():
                stem, _, tag = name.rpartition("__mutmut_")
                if not stem or tag == "orig" or stem + "__mutmut_orig" not in funcs:
                    continue
                orig = body_lines(lines, funcs[stem + "__mutmut_orig"])
                diffs[f"{module}.{name}"] = [line.rstrip() for line in difflib.unified_diff(
                    orig, body_lines(lines, node), n=0, lineterm="") if line[:1] in "+-" and line[:3] not in
                    ("+++", "---")]
    return diffs


def body_lines(lines: list[str], node: ast.FunctionDef) -> list[str]:
    """The stripped lines of a function, its name replaced so that mutant and original compare equal."""
    body = [line.strip() for line in lines[node.lineno - 1 : node.end_lineno]]
    body[0] = body[0].replace(node.name, "f", 1)
    return body


def judged(name: str, diff: list[str]) -> str | None:
    """The reason a survivor was judged equivalent: its function and its mutated line are listed."""
    function = name.rpartition("__mutmut_")[0]
    mutated = {line[1:].strip() for line in diff if line.startswith("+")}
    for listed, line, reason in JUDGED:
        if listed == function and line in mutated:
            return reason
    return None


def module_of(name: str) -> str:
    return re.split(r"\.x(?:ǁ|_)", name, maxsplit=1)[0]


def summarise_group(work: Path, sources, env, seconds) -> dict:
    status = statuses(work, env)
    commit = (work / "COMMIT").read_text() if (work / "COMMIT").exists() else "?"
    diffs = mutant_diffs(work, sources)
    per_module: dict[str, Counter] = {}
    for name, state in status.items():
        per_module.setdefault(module_of(name), Counter())[state] += 1
    survivors, harmless = {}, {}
    for name, state in sorted(status.items()):
        if state in KILLED:
            continue
        reason = judged(name, diffs.get(name, []))
        entry = {"status": state, "diff": diffs.get(name, [])}
        if reason:
            harmless[name] = {**entry, "reason": reason}
        else:
            survivors[name] = entry
    return {"sources": sources, "seconds": round(seconds, 1), "commit": commit,
            "per_module": {m: dict(c) for m, c in sorted(per_module.items())},
            "survivors": survivors, "judged_harmless": harmless}


def git_head() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    return head.stdout.strip()


def rates(per_module: dict[str, dict]) -> dict:
    """Killed over every mutant run (mutants of a run stopped early, "not checked", are counted apart)."""
    total = sum(sum(c.values()) for c in per_module.values())
    unrun = sum(c.get("not checked", 0) for c in per_module.values())
    killed = sum(c.get(k, 0) for c in per_module.values() for k in KILLED)
    run = total - unrun
    return {"mutants": total, "not_checked": unrun, "killed": killed, "kill_rate": killed / run if run else None}


def report(result: dict) -> dict:
    """Totals per group, per module and overall, from the groups' summaries."""
    modules: dict[str, dict] = {}
    for group in result["groups"].values():
        modules.update(group["per_module"])
        group.update(rates(group["per_module"]))
        group["harmless"] = len(group["judged_harmless"])
    harmless = Counter(module_of(n) for g in result["groups"].values() for n in g["judged_harmless"])
    result["per_module"] = {m: {**c, **rates({m: c}), "judged_harmless": harmless[m]}
                            for m, c in sorted(modules.items())}
    result.update(rates(modules))
    result["judged_harmless"] = sum(g["harmless"] for g in result["groups"].values())
    for entry in [result, *result["groups"].values(), *result["per_module"].values()]:
        n = entry.get("harmless", entry.get("judged_harmless", 0))
        left = entry["mutants"] - entry["not_checked"] - n
        entry["score_without_equivalent"] = entry["killed"] / left if left else None  # killed / (run - judged)
    return result


def run_group(name: str, work: Path, max_children: int, env) -> tuple[int, float]:
    scratch_copy(work, GROUPS[name], TESTS)
    start = time.monotonic()
    with open(work / "mutmut.log", "w") as log:  # mutmut's own output, for a run that went wrong
        code = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(max_children)],
                              cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    return code, time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", default="/tmp/tripartite-mutation", help="scratch directory (one folder per group)")
    parser.add_argument("--groups", default=",".join(GROUPS), help=f"comma-separated groups of {sorted(GROUPS)}")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--summary-only", action="store_true", help="summarise earlier runs in --work")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "mutation.json"))
    args = parser.parse_args()
    names = [g for g in args.groups.split(",") if g]
    unknown = sorted(set(names) - set(GROUPS))
    if unknown:
        parser.error(f"unknown groups {unknown}; choose from {sorted(GROUPS)}")
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = Path(args.out)
    old = json.loads(out.read_text()) if out.exists() else {}
    result = {"groups": {g: v for g, v in old.get("groups", {}).items() if g in GROUPS and g not in names}}
    for name in names:
        work = Path(args.work) / name
        seconds = 0.0
        if args.summary_only:
            seconds = old.get("groups", {}).get(name, {}).get("seconds", 0.0)
        else:
            code, seconds = run_group(name, work, args.max_children, env)
            if code not in (0, 1):
                print(f"mutmut failed on {name} (exit {code}); see {work}", file=sys.stderr)
                return code
        result["groups"][name] = summarise_group(work, GROUPS[name], env, seconds)
        if not any(c.get(k) for c in result["groups"][name]["per_module"].values() for k in KILLED):
            print(f"no mutant of {name} was killed: the tests probably failed to run; see {work}", file=sys.stderr)
            return 1
        result = report({"groups": dict(sorted(result["groups"].items()))})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")  # after every group
    print_table(result, out)
    return 0


def print_table(result: dict, out: Path) -> None:
    print(f"{'module':48} {'mutants':>7} {'killed':>6} {'rate':>6} {'no tests':>8} {'harmless':>8}")
    for module, c in result["per_module"].items():
        print(f"{module:48} {c['mutants']:7} {c['killed']:6} {c['kill_rate']:6.1%} {c.get('no tests', 0):8} "
              f"{c['judged_harmless']:8}")
    for name, g in result["groups"].items():
        print(f"group {name:12} {g['killed']:5}/{g['mutants'] - g['not_checked']:<5} killed ({g['kill_rate']:.1%}), "
              f"{g['harmless']} survivors judged harmless, {g['seconds']:.0f} s, tree {g['commit']}")
    unrun = f", {result['not_checked']} not run" if result["not_checked"] else ""
    print(f"overall {result['killed']}/{result['mutants'] - result['not_checked']} killed "
          f"({result['kill_rate']:.1%}{unrun}); {result['score_without_equivalent']:.1%} of the mutants not judged "
          f"equivalent; details in {out}")


if __name__ == "__main__":
    sys.exit(main())
