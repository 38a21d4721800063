"""The Lava time schedule: process counts per granularity, delay lines, step counts (no Lava run)."""

import numpy as np
import pytest

import compiler
from compiler.errors import InputError
from compiler.models import random_bert, random_llama
from hardware_sim.lava import lava_steps, make_plan
from hardware_sim.lava.kernels import KERNELS


@pytest.fixture(scope="module")
def bert():
    return compiler.compile(random_bert(), max_tokens=16)


@pytest.fixture(scope="module")
def llama():
    return compiler.compile(random_llama(), max_tokens=16)


def compute_nodes(net):
    return [op.name for op in net.nodes() if op.kind in KERNELS]


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_fine_maps_one_process_per_node_block_one_per_stage_fused_one(name, request):
    net = request.getfixturevalue(name)
    decoders = len(net.of_kind("output_decoder"))
    fine = make_plan(net, 5, 1, granularity="fine")
    assert len(fine.groups) == len(compute_nodes(net))
    assert fine.n_processes == len(compute_nodes(net)) + 1 + decoders
    block = make_plan(net, 5, 1, granularity="block")
    circuits = len(net.of_kind("astrocyte"))
    assert len(block.groups) == circuits + 1
    for group in block.groups.values():  # one circuit per stage, all of its parts together
        kinds = [net.node(n).kind for n in group]
        assert kinds.count("astrocyte") <= 1
        assert kinds.count("astrocyte") == kinds.count("features") == kinds.count("hebbian_synapses")
    fused = make_plan(net, 5, 1, granularity="fused")
    assert len(fused.groups) == 1 and fused.n_processes == 2 + decoders
    assert sorted(next(iter(fused.groups.values()))) == sorted(compute_nodes(net))


def test_fused_saves_one_step_per_process_boundary(bert):
    """Messages inside a process take no step: fused is block minus one step per stage boundary."""
    T = 6
    block, fused = lava_steps(bert, T, 2, "block"), lava_steps(bert, T, 2, "fused")
    boundaries = len(bert.of_kind("astrocyte"))
    assert block["latency"] - fused["latency"] == boundaries
    assert block["period"] == fused["period"] == 2 * T


@pytest.mark.parametrize("granularity", ["fine", "block", "fused"])
def test_every_input_arrives_when_its_node_consumes_it(bert, granularity):
    """Arrival + delay == write clock + port offset for every edge; delays are never negative."""
    T = 7
    plan = make_plan(bert, T, 2, granularity=granularity)
    for name, kernel in plan.kernels.items():
        offsets = kernel.offsets(kernel.clock.R)
        for port, src in bert.inputs_of(name).items():
            hop = 0 if plan.group_of.get(src) == plan.group_of[name] else 1
            assert plan.delays[name][port] >= 0
            assert plan.ready[src] + hop + plan.delays[name][port] == kernel.clock.W + offsets[port]


def test_bidirectional_layers_add_a_sequence_of_latency_each(bert):
    """Encoder: every layer waits for all T writes before its first read."""
    layers = len(bert.of_kind("astrocyte"))
    for T in (4, 9):
        steps = lava_steps(bert, T, 1, "fused")
        assert steps["period"] == 2 * T
        assert steps["latency"] >= layers * T
        assert steps["total"] == steps["latency"] + T
        assert lava_steps(bert, T, 3, "fused")["total"] == steps["total"] + 2 * 2 * T


def test_causal_decoder_pipelines_tokens(llama):
    """Decoder: write t then read t in one step, so latency does not grow with T."""
    a, b = lava_steps(llama, 4, 1, "fused"), lava_steps(llama, 12, 1, "fused")
    assert a["latency"] == b["latency"]
    assert b["total"] - a["total"] == 8 and b["period"] == 12
    assert lava_steps(llama, 4, 1, "fine")["latency"] > a["latency"]


def test_bad_granularity_is_an_input_error(bert):
    with pytest.raises(InputError, match="granularity"):
        make_plan(bert, 3, 1, granularity="coarse")


def test_masked_tokens_are_not_written(bert):
    mask = np.array([[True, True, False]])
    plan = make_plan(bert, 3, 1, mask)
    feats = [k for k in plan.kernels.values() if k.op.kind == "features"]
    assert feats and all(k.clock.written.tolist() == [[True, True, False]] for k in feats)
