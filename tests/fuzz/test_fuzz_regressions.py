"""The fuzz targets in the default suite: every input that once crashed a loader (regressions/),
plus a fixed sample of generated inputs per target, must load or fail with a one-line
TripartiteError.  ``make fuzz`` runs the same targets for a time budget."""

import importlib.util
import random
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SAMPLE = {"onnx": 4, "gguf": 10}  # loads of these take ~1 s; 25 inputs for the others


def load_module(name):
    spec = importlib.util.spec_from_file_location(f"fuzz_{name}", HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TARGETS = load_module("targets")
RUNNER = load_module("run_fuzz")
NAMES = [n for n in TARGETS.TARGETS if n not in ("onnx", "gguf")] + ["onnx", "gguf"]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def inputs_for(name):
    rng = random.Random(f"suite-{name}")
    cases = [(f"sample-{i}", rng.randbytes(rng.randint(1, 128))) for i in range(SAMPLE.get(name, 25))]
    cases += [(p.name, p.read_bytes()) for p in sorted((HERE / "regressions").glob(f"{name}-*.bin"))]
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_loader_survives_hostile_inputs(name, scratch):
    target = TARGETS.TARGETS[name]
    if name == "gguf":
        pytest.importorskip("gguf")
    if name == "onnx":
        pytest.importorskip("onnx")
    target.prepare(scratch / name)
    failures = []
    for label, data in inputs_for(name):
        report = RUNNER.check_one(TARGETS, target, data, scratch / name)
        if report:
            failures.append(f"{label}: {report.splitlines()[0]}")
    assert not failures, "\n".join(failures)
