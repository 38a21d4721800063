"""The Lava schedule's plan without running it: which Schedule node governs each circuit node, that no
node waits longer than its latest input needs, and the refusals, checked by content."""

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.errors import SimulationError
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.lava import make_plan
from hardware_sim.lava.kernels import KERNELS
from hardware_sim.lava.schedule import circuit_schedule

CIRCUIT_KINDS = ("features", "hebbian_synapses", "astrocyte")


def nets():
    return {"bert": compile_model(random_bert(seed=2), max_tokens=8),
            "llama": compile_model(random_llama(LlamaConfig(num_hidden_layers=1), seed=2), max_tokens=8)}


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_every_circuit_node_is_governed_by_its_features_schedule(name):
    net = nets()[name]
    circuits = [op for op in net.nodes() if op.kind in CIRCUIT_KINDS]
    assert {op.kind for op in circuits} == set(CIRCUIT_KINDS)
    for circuit in circuits:
        op, feats = circuit, circuit if circuit.kind == "features" else None
        while feats is None:  # follow the circuit back to its feature population by graph edges
            srcs = [net.node(s) for s in net.inputs_of(op.name).values()]
            feats = next((s for s in srcs if s.kind == "features"), None)
            op = feats or next(s for s in srcs if s.kind in CIRCUIT_KINDS)
        assert circuit_schedule(net, circuit.name) is net.node(feats.schedule), circuit.name
        assert net.node(feats.schedule).kind == "schedule"
    others = [op for op in net.nodes() if op.kind not in CIRCUIT_KINDS]
    assert others and all(circuit_schedule(net, op.name) is None for op in others)


@pytest.mark.parametrize("granularity", ["fused", "block", "fine"])
@pytest.mark.parametrize("name", ["bert", "llama"])
def test_no_node_waits_longer_than_its_latest_input_needs(name, granularity):
    """Each node starts as early as its inputs allow: the input that arrives last waits zero steps."""
    net = nets()[name]
    for T in (1, 3):
        plan = make_plan(net, T, 2, granularity=granularity)
        assert plan.delays
        for node, delays in plan.delays.items():
            assert min(delays.values()) == 0 and all(d >= 0 for d in delays.values()), node


def test_a_features_node_naming_a_non_schedule_node_is_refused():
    net = nets()["bert"]
    feats = net.of_kind("features")[0]
    entry = net.of_kind("input_encoder")[0].name
    feats.schedule = entry
    with pytest.raises(SimulationError, match=rf"^lava: node '{feats.name}' names schedule '{entry}', which is "
                                              r"missing$"):
        make_plan(net, 3, 1)


def test_a_kind_no_lava_process_runs_is_refused(monkeypatch):
    net = nets()["bert"]
    monkeypatch.delitem(KERNELS, "norm_astrocyte")
    first = next(op.name for op in net.nodes() if op.kind == "norm_astrocyte")
    with pytest.raises(SimulationError, match=rf"^lava: node '{first}' has kind 'norm_astrocyte', which no "
                                              r"Lava process runs$"):
        make_plan(net, 3, 1)


def test_a_network_without_an_input_is_refused():
    net = nets()["bert"]
    net.g.remove_node(net.of_kind("input_encoder")[0].name)
    with pytest.raises(SimulationError, match=rf"^lava: network '{net.name}' needs exactly one input encoder, "
                                              r"has 0$"):
        make_plan(net, 3, 1, np.ones((1, 3), bool))
