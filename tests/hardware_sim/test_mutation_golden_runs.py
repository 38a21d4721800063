"""Golden simulator runs at both precisions: refusals name the simulator, the node and what to do;
padding stand-ins, token positions, per-sequence interventions and probes behave as documented."""

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.errors import SimulationError
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.golden import simulate
from hardware_sim.golden.fixed_registry import FIXED_BEHAVIOURS
from hardware_sim.golden.fixed_simulator import stand_in_padding
from hardware_sim.golden.registry import BEHAVIOURS, Run

LABELS = {"float64": "golden", "loihi2": "golden loihi2"}


def bert(precision="float64", seed=2):
    graph = random_bert(seed=seed)
    net = compile_model(graph, max_tokens=8, precision=precision)
    return graph, net, graph.encoder.encode(np.random.default_rng(seed).integers(3, 60, (2, 4)))


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
def test_a_network_without_an_input_is_refused_by_name(precision):
    _, net, x = bert(precision)
    entry = net.of_kind("input_encoder")[0].name
    net.g.remove_node(entry)
    with pytest.raises(SimulationError, match=rf"^golden: network '{net.name}' needs exactly one input encoder, "
                                              r"has 0$"):
        simulate(net, x, precision=precision)


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
def test_a_numeric_failure_names_the_simulator_node_and_kind(monkeypatch, precision):
    _, net, x = bert(precision)
    table = FIXED_BEHAVIOURS if precision == "loihi2" else BEHAVIOURS

    def overflow(op, args, run):
        raise FloatingPointError("overflow in the test")

    monkeypatch.setitem(table, "astrocyte", overflow)
    first = next(op.name for op in net.nodes() if op.kind == "astrocyte")
    with pytest.raises(SimulationError, match=rf"^{LABELS[precision]}: node '{first}' \(astrocyte\) failed: "
                                              r"overflow in the test$"):
        simulate(net, x, precision=precision)


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
@pytest.mark.parametrize("target", ["nowhere", "input"])
def test_a_features_node_without_its_schedule_is_refused(precision, target):
    _, net, x = bert(precision)
    feats = net.of_kind("features")[0]
    target = target if target == "nowhere" else net.of_kind("input_encoder")[0].name  # a node, not a schedule
    feats.schedule = target
    with pytest.raises(SimulationError, match=rf"^golden: schedule '{target}' is missing from the network$"):
        simulate(net, x, precision=precision)


def test_a_probe_is_a_copy():
    run = Run(net=None, dtype=np.float64, mask=np.ones((1, 2), bool), positions=None,
              probe_kinds=frozenset({"soma"}), interventions={})
    value = np.arange(4.0)
    run.probe("soma", "n", "v", value)
    run.probe("calcium", "n", "c", value)  # a kind not asked for
    value[:] = -1.0
    assert list(run.probes) == ["n/v"] and run.probes["n/v"].tolist() == [0.0, 1.0, 2.0, 3.0]


def test_padding_stands_in_for_the_first_real_token_of_its_own_sequence():
    x = np.arange(2 * 4 * 3, dtype=float).reshape(2, 4, 3)
    mask = np.array([[False, True, True, False], [True, True, False, False]])
    got = stand_in_padding(x, mask)
    want = x.copy()
    want[0, [0, 3]] = x[0, 1]
    want[1, [2, 3]] = x[1, 0]
    np.testing.assert_array_equal(got, want)
    assert stand_in_padding(x, np.ones((2, 4), bool)) is x


def test_loihi2_token_positions_reach_rotary_populations():
    """Explicit positions change a rotary decoder's outputs, and the integer run follows the float run
    given the same positions (measured agreement: 1.4e-5 of 2.8)."""
    graph = random_llama(LlamaConfig(num_hidden_layers=1), seed=2)
    net = compile_model(graph, max_tokens=8, precision="loihi2")
    x = graph.encoder.encode(np.random.default_rng(1).integers(3, 60, (1, 3)))
    positions = np.array([[5, 6, 7]])
    moved = simulate(net, x, precision="loihi2", positions=positions).outputs
    plain = simulate(net, x, precision="loihi2").outputs
    ref = simulate(net, x, precision="float64", positions=positions).outputs
    for role, y in moved.items():
        assert not np.array_equal(y[:, 1:], plain[role][:, 1:])
        np.testing.assert_allclose(y, ref[role], rtol=0, atol=5e-5)


def test_loihi2_per_sequence_interventions_act_on_their_sequence_only():
    _, net, x = bert("loihi2")
    astro = net.of_kind("astrocyte")[0]
    scale = np.ones((2, astro.n_heads, astro.m))
    scale[1, :, 0] = 0.0
    keep = (astro.name,)
    base = simulate(net, x, precision="loihi2", keep=keep).values[astro.name]
    out = simulate(net, x, precision="loihi2", keep=keep,
                   interventions={astro.name: {"calcium_scale": scale}}).values[astro.name]
    np.testing.assert_array_equal(out[0], base[0])
    assert not np.array_equal(out[1], base[1])


@pytest.mark.parametrize("precision", ["float32", "float64"])
def test_circuits_without_the_padding_mask_keep_the_run_dtype(precision):
    graph = random_bert(seed=4)
    for op in graph.nodes():
        if op.kind == "attention":
            op.use_padding_mask = False
    net = compile_model(graph, max_tokens=8)
    x = graph.encoder.encode(np.random.default_rng(2).integers(3, 60, (2, 4)))
    mask = np.array([[True] * 4, [True, True, False, False]])
    out = simulate(net, x, mask, precision=precision, probes={"all"})
    assert all(v.dtype == np.dtype(precision) for v in [*out.outputs.values(), *out.probes.values()])
    masked = simulate(compile_model(random_bert(seed=4), max_tokens=8), x, mask, precision=precision).outputs
    for role, y in out.outputs.items():
        np.testing.assert_allclose(y[0], masked[role][0], rtol=0, atol=1e-6)  # no padding: the same
        assert not np.allclose(y[1], masked[role][1])  # padded tokens are written
