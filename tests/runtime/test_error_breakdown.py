"""The loihi2 error breakdown: parts found by kind, shares measured by re-running golden with a part in
float, the simulator left as it was, float stand-ins against the integer operations, verify --breakdown."""

import json

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models import random_llama
from hardware_sim.fixed_point import SaturationCounter, exp_fixed, reciprocal_fixed
from hardware_sim.golden import fixed_circuit, fixed_features
from hardware_sim.golden.fixed_registry import FIXED_BEHAVIOURS
from runtime.cli import main
from runtime.error_breakdown import (
    error_breakdown,
    exp_float,
    linear_name,
    part_in_float,
    parts_of,
    reciprocal_float,
    synapse_kind,
)
from runtime.reference import run_reference


@pytest.fixture(scope="module")
def llama():
    g = random_llama()
    net = compile_model(g, precision="loihi2", max_tokens=8, split_qk=True)
    ids = np.random.default_rng(2).integers(0, 100, size=(2, 6))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    x = net.encoder.encode(ids)
    return g, net, x, mask, run_reference(g, x, mask).outputs


def test_names_and_kinds():
    assert linear_name("layer3.attn.q.synapses.residual") == "layer3.attn.q"
    assert linear_name("layer0.mlp.down.synapses.outliers.select") == "layer0.mlp.down"
    kinds = [synapse_kind(f"layer1.{n}.synapses") for n in ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate",
                                                          "mlp.up", "mlp.down")]
    assert kinds == ["q", "k", "v", "o", "gate", "up", "down"]
    assert synapse_kind("lm_head.synapses") == synapse_kind("head.synapses") == "head"
    assert synapse_kind("encoder.proj.synapses") == "other"


def test_shares_locate_the_error(llama):
    g, net, x, mask, ref = llama
    parts = parts_of(net)
    assert set(parts) == {"q", "k", "v", "o", "gate", "up", "down", "head", "exp", "reciprocal", "normalisation",
                          "activation"}
    assert len(parts["q"]) == 4  # bulk and residual group of each layer
    before = dict(FIXED_BEHAVIOURS)
    res = error_breakdown(net, g, x, mask, ref)
    assert dict(FIXED_BEHAVIOURS) == before and fixed_features.exp_fixed is exp_fixed
    assert fixed_circuit.reciprocal_fixed is reciprocal_fixed
    by = {r["part"]: r for r in res["parts"]}
    assert res["output"] == "logits" and res["rel_l2_err"] > 0 and res["mean_kl"] > 0
    # 8-bit weights cause the error; the integer operations are accurate to ~1e-7 and cause next to none
    weights = sum(by[p]["share"] for p in ("v", "o", "gate", "up", "down", "head"))
    assert 0.6 < weights < 1.3
    for p in ("exp", "reciprocal", "normalisation", "activation", "q", "k"):  # q, k carry 16-bit weights here
        assert abs(by[p]["share"]) < 0.05, (p, by[p])
    for p in ("v", "down", "head"):
        assert by[p]["rel_l2_err"] < res["rel_l2_err"] and by[p]["mean_kl"] < res["mean_kl"]


def test_all_weights_in_float_leaves_only_state_rounding(llama):
    g, net, x, mask, ref = llama
    from contextlib import ExitStack

    from hardware_sim.golden import simulate

    full = simulate(net, x, mask, precision="loihi2").outputs["logits"]
    weighted = [op.name for op in net.of_kind("synapses") if op.weight is not None]
    with ExitStack() as stack:
        stack.enter_context(part_in_float("all", weighted, g))
        exact = simulate(net, x, mask, precision="loihi2").outputs["logits"]
    want = ref["logits"][mask]
    err = lambda y: np.linalg.norm(y[mask] - want) / np.linalg.norm(want)  # noqa: E731
    assert err(exact) < err(full) / 100


def test_float_stand_ins_agree_with_the_integer_operations():
    x = np.arange(-(30 << 16), 2 << 16, 977, dtype=np.int64)  # [-30, 2) at exponent -16
    c = SaturationCounter()
    a, b = exp_fixed(x, -16, -22, c, "e"), exp_float(x, -16, -22, c, "e")
    assert np.all(np.abs(a - b) <= 2.7e-7 * np.abs(b) + 1)
    z = np.arange(1, 1 << 20, 313, dtype=np.int64)
    a, b = reciprocal_fixed(z, -10, -14, c, "r"), reciprocal_float(z, -10, -14, c, "r")
    assert np.all(np.abs(a - b) <= 3.6e-7 * np.abs(b) + 1)
    c = SaturationCounter()
    assert reciprocal_float(np.array([0, -3]), 0, 0, c, "r").tolist() == [2**23 - 1] * 2 and c.to_dict()["r"] == 2


def test_verify_breakdown_cli(tmp_path, capsys):
    g = random_llama()
    g.save(tmp_path / "g.tpg")
    compile_model(g, precision="loihi2", max_tokens=8).save(tmp_path / "n.tpn")
    compile_model(g, max_tokens=8).save(tmp_path / "f.tpn")
    np.savez(tmp_path / "ids.npz", input_ids=np.random.default_rng(0).integers(0, 100, size=(2, 5)))
    out = tmp_path / "v.json"
    code = main(["verify", str(tmp_path / "n.tpn"), "--reference", str(tmp_path / "g.tpg"), "--inputs",
                 str(tmp_path / "ids.npz"), "--breakdown", "--json", str(out)])
    assert code == 0
    d = json.loads(out.read_text())["error_breakdown"]
    assert d["output"] == "logits" and {r["part"] for r in d["parts"]} >= {"q", "down", "head", "exp"}
    assert "where the loihi2 error comes from" in capsys.readouterr().out
    code = main(["verify", str(tmp_path / "f.tpn"), "--reference", str(tmp_path / "g.tpg"), "--inputs",
                 str(tmp_path / "ids.npz"), "--breakdown"])
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1 and "--breakdown needs a network compiled with --precision loihi2" in err[0]
