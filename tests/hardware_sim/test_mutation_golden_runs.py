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


def learned(graph, window):
    import compiler
    from compiler.distill.maps import FeatureMaps, LayerMaps

    rng = np.random.default_rng(0)
    layers = {att.name: LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, 4, att.scale)
              for att in graph.of_kind("attention")}
    return compiler.compile(graph, lowering="learned", feature_maps=FeatureMaps(layers=layers, window=window),
                            max_tokens=16, precision="loihi2")


PROBED = {
    "bert exact": lambda: (random_bert(seed=3), None),
    "llama exact": lambda: (random_llama(LlamaConfig(num_hidden_layers=1), seed=3), None),
    "bert learned": lambda: (random_bert(seed=3), 0),
    "llama learned window": lambda: (random_llama(LlamaConfig(num_hidden_layers=1, num_key_value_heads=2), seed=4), 3),
}


@pytest.mark.parametrize("name", sorted(PROBED))
def test_every_loihi2_probe_is_the_float_runs_value(name):
    """Each probe of the integer run, as a value, equals the float run's at every real token (padded
    tokens are stood in for differently); measured worst 3.6e-6 of 1 + the probe's largest value."""
    graph, window = PROBED[name]()
    net = compile_model(graph, max_tokens=8, precision="loihi2") if window is None else learned(graph, window)
    x = graph.encoder.encode(np.random.default_rng(0).integers(3, 60, (2, 6)))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    fixed = simulate(net, x, mask, precision="loihi2", probes={"all"}).probes
    ref = simulate(net, x, mask, precision="float64", probes={"all"}).probes
    assert sorted(fixed) == sorted(ref) and any(k.endswith("/calcium") for k in ref)
    for key, got in fixed.items():
        want = ref[key]
        assert got.shape == want.shape, key
        if key.endswith("/weights"):  # (B, G, dv, m): after every write
            got, want = got.reshape(-1), want.reshape(-1)
        else:
            got, want = got[mask], want[mask]
        np.testing.assert_allclose(got, want, rtol=0, atol=3e-5 * (1 + np.abs(want).max()), err_msg=key)


# ---- exact slots ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("all_written", [True, False])
def test_slot_responses_saturate_under_the_node_name(im, all_written):
    """exp(0) at 2**-25 needs 26 bits: every written slot at the offset saturates and is counted; a row
    whose written potentials all sit at -2**23 still takes its offset from them."""
    from collections import Counter
    from itertools import product

    from hardware_sim.fixed_point import SaturationCounter
    from hardware_sim.golden.fixed_features import slot_response_step

    rng = np.random.default_rng(8)
    potential = rng.integers(-(2**23), 2**23, (2, 3, 6))
    potential[1, 2] = -(2**23)
    written = np.ones((2, 1, 6), bool) if all_written else rng.random((2, 1, 6)) < 0.6
    if not all_written:
        written[0, 0, :2] = True
        written[1, 0] = [True, False, True, False, False, False]
    counter, model = SaturationCounter(), Counter()
    f, s = slot_response_step(potential, written, -14, -25, counter, "slots")
    for b, t in product(range(2), range(3)):
        ws = [j for j in range(6) if written[b, 0, j]]
        offset = max(int(potential[b, t, j]) for j in ws)
        assert int(s[b, t]) == offset
        assert [int(v) for v in f[b, t]] == [im.exp(int(potential[b, t, j]) - offset, -14, -25, model, "slots")
                                             if j in ws else 0 for j in range(6)]
    assert int(s[1, 2]) == -(2**23)
    assert counter.to_dict() == {"slots": model["slots"]} and model["slots"] >= 6


def test_slot_writes_start_at_slot_zero_and_refuse_too_many_tokens():
    from types import SimpleNamespace

    from hardware_sim.golden.features import slot_writes
    from hardware_sim.golden.fixed_features import slot_writes_int

    op = SimpleNamespace(name="feats", m=4, n_kv_heads=2)
    w = np.array([[1.0, 0.0, 1.0]])
    writes = slot_writes(op, w, np.float64)
    assert writes.shape[:3] == (1, 2, 3)
    for t in range(3):
        assert writes[0, 1, t].tolist()[:3] == [w[0, t] if j == t else 0.0 for j in range(3)]
    ints = slot_writes_int(op, w.astype(np.int64), -3)
    assert ints.shape == (1, 2, 3, 4) and ints[0, 0, 2].tolist() == [0, 0, 8, 0]
    slot_writes_int(op, w.astype(np.int64), -3, start=1)  # slots 1..3 of 4
    for start in (2, 3):
        with pytest.raises(SimulationError, match=rf"^golden: node 'feats' has 4 slots but the input has {start + 3} "
                                                  rf"tokens; compile with --max-tokens {start + 3} or more$"):
            slot_writes_int(op, w.astype(np.int64), -3, start=start)


@pytest.mark.parametrize("action", ["calcium_scale", "weight_scale"])
@pytest.mark.parametrize("model", ["bert", "llama"])
def test_scaled_circuits_saturate_under_their_node_names(model, action):
    """A scale of 300 drives the circuit's state, responses and outputs beyond 24 bits: every clamped
    value is counted under the node that clamped it; a scale of 1 changes nothing, bit for bit."""
    graph = random_bert(seed=3) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=1), seed=3)
    net = compile_model(graph, max_tokens=8, precision="loihi2")
    x = graph.encoder.encode(np.random.default_rng(0).integers(3, 60, (2, 6)))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    kind = "astrocyte" if action == "calcium_scale" else "hebbian_synapses"
    op = net.of_kind(kind)[0]
    shape = (op.n_heads, op.m) if action == "calcium_scale" else ()
    plain = simulate(net, x, mask, precision="loihi2")
    same = simulate(net, x, mask, precision="loihi2", interventions={op.name: {action: np.ones(shape)}})
    assert plain.saturations == same.saturations == {}
    for role, y in plain.outputs.items():
        np.testing.assert_array_equal(same.outputs[role], y)
    out = simulate(net, x, mask, precision="loihi2", interventions={op.name: {action: np.full(shape, 300.0)}})
    names = {n.name for n in net.nodes()}
    assert set(out.saturations) <= names and out.saturations.get(op.name, 0) > 0, out.saturations
    if action == "weight_scale":
        astro = net.of_kind("astrocyte")[0].name
        assert out.saturations.get(astro, 0) > 0 and len(out.saturations) == 3


# ---- prepared parameters ------------------------------------------------------------------------------------


def test_prepared_parameters_are_reused_while_their_inputs_hold():
    """Same arrays and equal records: prepared once, its saturations counted into every run; a replaced
    array, a changed (even nested, even in place) record value or another extra: prepared again."""
    from types import SimpleNamespace

    from hardware_sim.fixed_point import SaturationCounter
    from hardware_sim.golden.fixed_prepared import node_key, prepared_on_node

    calls = []

    def make(counter):
        calls.append(1)
        counter.add("node", 2)
        return len(calls)

    op = SimpleNamespace(weight=np.ones((2, 3)), bias=np.zeros(2),
                         quant={"exp": -10, "rows": [-3, -4], "arrays": [np.array([1, 2]), np.array([3])]})

    def prepare(*extra):
        counter = SaturationCounter()
        value = prepared_on_node(op, "synapse", node_key(op, *extra), make, counter)
        return value, counter.to_dict()

    assert prepare(-19) == (1, {"node": 2})
    assert prepare(-19) == (1, {"node": 2})  # reused, its saturations counted again
    assert prepare(-18) == (2, {"node": 2})  # another input exponent
    assert prepare(-18, 0) == (3, {"node": 2})  # another key length
    op.bias = np.zeros(2)  # equal values, another array
    assert prepare(-18, 0)[0] == 4
    op.weight = np.ones((2, 3))
    assert prepare(-18, 0)[0] == 5
    assert prepare(-18, 0)[0] == 5
    op.quant["rows"][1] = -5  # in place, inside the record
    assert prepare(-18, 0)[0] == 6
    op.quant["arrays"][0][1] = 7  # an array inside a list inside the record
    assert prepare(-18, 0)[0] == 7
    op.quant["arrays"] = [np.array([1, 7]), np.array([3])]  # equal values again
    assert prepare(-18, 0)[0] == 7
    op.quant["arrays"] = [np.array([1, 7])]  # one fewer
    assert prepare(-18, 0)[0] == 8
    op.quant["exp"] = -11
    assert prepare(-18, 0)[0] == 9
    op.quant["extra"] = 1
    assert prepare(-18, 0)[0] == 10
    del op.quant["extra"]
    assert prepare(-18, 0)[0] == 11
    assert prepare(-18, 0)[0] == 11
    other = SimpleNamespace(weight=op.weight, bias=op.bias, quant=op.quant)  # the cache lives on the node
    assert prepared_on_node(other, "synapse", node_key(other, -18, 0), make, SaturationCounter()) == 12


def test_mantissas_round_half_up_and_clamp_to_their_width():
    from fractions import Fraction
    from math import floor

    from hardware_sim.golden.fixed_neurons import mantissas

    w = np.array([[3.0, -3.0, 0.3125, -0.3125, 1000.0], [-3000.0, 0.75, -0.75, 2.5, -2.5]])
    e = np.array([-2, -1])
    for bits in (8, 12):
        lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        want = [[max(lo, min(hi, floor(Fraction(v) / Fraction(2) ** int(e[i]) + Fraction(1, 2)))) for v in row]
                for i, row in enumerate(w)]
        got = mantissas(w, e, bits)
        assert got.dtype == np.int64 and got.tolist() == want
        assert got.min() == lo and got.max() == hi
    assert mantissas(np.array([0.375, -0.375]), -3).tolist() == [3, -3]


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
@pytest.mark.parametrize("model", ["bert", "llama"])
def test_a_weight_scale_scales_the_circuit_output(model, precision):
    """``u = (s H) f(q)`` while the soma is unchanged: a weight scale of 1/2 halves the output (exactly in
    float64, within one output step, 9.5e-7, at loihi2). A causal read before any real token has offset 0."""
    graph = random_bert(seed=3) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=1), seed=3)
    net = compile_model(graph, max_tokens=8, precision=precision)
    x = graph.encoder.encode(np.random.default_rng(0).integers(3, 60, (2, 6)))
    mask = np.ones((2, 6), bool)
    mask[1, :2] = False  # a sequence padded on the left
    astro, heb = net.of_kind("astrocyte")[0].name, net.of_kind("hebbian_synapses")[0].name
    base = simulate(net, x, mask, precision=precision, keep=(astro,), probes={"soma"})
    half = simulate(net, x, mask, precision=precision, keep=(astro,),
                    interventions={heb: {"weight_scale": 0.5}}).values[astro]
    np.testing.assert_allclose(half, 0.5 * base.values[astro], rtol=0, atol=0 if precision == "float64" else 2e-6)
    assert np.abs(base.values[astro]).max() > 1.0
    if model == "llama":
        assert not base.probes[f"{astro}/soma_offset"][1, :2].any()


@pytest.mark.parametrize("score_exp,f_exp", [(-14, -20), (3, -21), (4, -21), (3, -22), (-30, -10), (-2, 0)])
@pytest.mark.parametrize("all_written", [True, False])
def test_slot_responses_at_the_edges_of_the_fused_passes(im, score_exp, f_exp, all_written):
    """Offsets up to 2**31 and beyond (counted as saturated inputs), exponents on either side of where the
    fused passes apply: exp_fixed's integers and counts, bit for bit."""
    from collections import Counter
    from itertools import product

    from hardware_sim.fixed_point import SaturationCounter
    from hardware_sim.golden.fixed_features import slot_response_step

    rng = np.random.default_rng(12)
    potential = rng.integers(-(2**23), 2**23, (2, 3, 5))
    potential[0, 0] = [2**31, 0, 1, 2**31 - 1, 5]  # offsets 2**31 - 1 and 2**31 exactly
    potential[0, 1] = [2**31 + 9, 0, 3, 7, 2**31 + 9]  # an offset beyond 2**31
    written = np.ones((2, 1, 5), bool) if all_written else np.array([[[True, True, False, True, False]],
                                                                     [[False, True, True, False, True]]])
    counter, model = SaturationCounter(), Counter()
    f, s = slot_response_step(potential, written, score_exp, f_exp, counter, "slots")
    for b, t in product(range(2), range(3)):
        ws = [j for j in range(5) if written[b, 0, j]]
        offset = max(int(potential[b, t, j]) for j in ws)
        assert int(s[b, t]) == offset
        assert [int(v) for v in f[b, t]] == [im.exp(int(potential[b, t, j]) - offset, score_exp, f_exp, model,
                                                    "slots") if j in ws else 0 for j in range(5)]
    assert f.dtype == np.int64
    assert counter.to_dict() == {k: v for k, v in model.items() if v}


@pytest.mark.parametrize("function", ["gelu_erf", "silu"])
def test_gate_activations_at_every_input_exponent(im, monkeypatch, function):
    """Every input exponent on either side of where the fused passes apply (a left shift of x by 0..15
    bits), against the Python-int model: values and counts, bit for bit."""
    from collections import Counter

    from hardware_sim.fixed_point import SaturationCounter
    from hardware_sim.golden import fixed_gate
    from hardware_sim.golden.fixed_gate import gate_activation

    monkeypatch.setattr(fixed_gate, "_MADE", {})  # derive the fused passes' tables in this test
    rng = np.random.default_rng(13)
    x = np.concatenate([rng.integers(-(1 << 24), 1 << 24, 60), rng.integers(-(1 << 10), 1 << 10, 60),
                        [-(1 << 23) - 1, -(1 << 23), (1 << 23) - 1, 1 << 23, 0, 1, -1]])
    for x_exp in range(-26, -3):
        y_exp = x_exp - 1
        counter, model = SaturationCounter(), Counter()
        got = gate_activation(function, x.reshape(-1, 1), x_exp, y_exp, counter, "pop")
        want = [im.activation(function, int(v), x_exp, y_exp, model, "pop") for v in x]
        assert got.dtype == np.int64 and [int(v) for v in got.ravel()] == want, x_exp
        assert counter.to_dict() == {k: v for k, v in model.items() if v} and model["pop"] > 0


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
def test_only_the_probe_kinds_asked_for_are_recorded(precision):
    _, net, x = bert(precision)
    assert simulate(net, x, precision=precision).probes == {}
    soma = simulate(net, x, precision=precision, probes={"soma"}).probes
    calcium = simulate(net, x, precision=precision, probes=("calcium",)).probes
    assert soma and calcium
    assert all(k.endswith(("/soma_sum", "/soma_offset", "/gain")) for k in soma)
    assert all(k.endswith("/calcium") for k in calcium)


@pytest.mark.parametrize("model", ["bert", "llama"])
def test_slot_responses_too_fine_for_their_exponent_are_counted_under_the_features(model):
    """A feature exponent of 2**-25 cannot hold exp(0): the clamped responses of every read are counted
    under the feature population, and nothing else saturates."""
    graph = random_bert(seed=3) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=1), seed=3)
    net = compile_model(graph, max_tokens=8, precision="loihi2")
    x = graph.encoder.encode(np.random.default_rng(0).integers(3, 60, (2, 6)))
    feats = net.of_kind("features")[0]
    assert simulate(net, x, precision="loihi2").saturations == {}
    feats.quant["exp"] = -25
    out = simulate(net, x, precision="loihi2")
    assert list(out.saturations) == [feats.name] and out.saturations[feats.name] >= 2 * 6


EXACT_STAGES = [("features", "score_exp"), ("hebbian_synapses", "w_exp"), ("astrocyte", "calcium_exp"),
                ("astrocyte", "soma_exp"), ("astrocyte", "recip_exp"), ("astrocyte", "exp")]


@pytest.mark.parametrize("kind,key", EXACT_STAGES)
@pytest.mark.parametrize("model", ["bert", "llama"])
def test_every_exact_stage_counts_its_saturations_under_its_node(model, kind, key):
    """An exponent 2**-20 finer than the quantize pass chose: the stage clamps its values, counted under its
    node (and under the nodes downstream whose inputs grew), never raised and never unnamed."""
    graph = random_bert(seed=3) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=1), seed=3)
    net = compile_model(graph, max_tokens=8, precision="loihi2")
    x = graph.encoder.encode(np.random.default_rng(0).integers(3, 60, (2, 6)))
    op = net.of_kind(kind)[0]
    op.quant[key] -= 20
    out = simulate(net, x, precision="loihi2")
    assert set(out.saturations) <= {n.name for n in net.nodes()} and out.saturations.get(op.name, 0) > 0


NEURON_STAGES = {
    "bert": [("embeddings.norm", "exp"), ("embeddings.norm", "gain_exp"), ("layer0.attn.q.synapses", "exp"),
             ("layer0.attn.q", "exp"), ("layer0.attn.q", "in_exp"), ("layer0.mlp.act", "exp"),
             ("layer0.mlp.act", "in_exp")],
    "llama": [("layer0.attn.norm", "exp"), ("layer0.attn.norm", "gain_exp"), ("layer0.attn.q.synapses", "exp"),
              ("layer0.attn.q_rope", "exp"), ("layer0.attn.q_rope", "in_exp"), ("layer0.mlp.act", "exp"),
              ("layer0.mlp.act", "in_exp"), ("layer0.mlp.gated", "exp"), ("layer0.mlp.gated", "in_exp")],
}


@pytest.mark.parametrize("model", ["bert", "llama"])
def test_every_neuron_stage_counts_its_saturations_under_its_node(model):
    """Norms, synapses and populations (identity, rotary, gelu, silu, product) with an exponent 2**-20
    finer than chosen: their clamped values are counted under their own name, never raised or unnamed."""
    graph = random_bert(seed=3) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=1), seed=3)
    net = compile_model(graph, max_tokens=8, precision="loihi2")
    x = graph.encoder.encode(np.random.default_rng(0).integers(3, 60, (2, 6)))
    names = {n.name for n in net.nodes()}
    for node, key in NEURON_STAGES[model]:
        op = net.node(node)
        saved = op.quant[key]
        op.quant[key] = saved - 20
        out = simulate(net, x, precision="loihi2")
        op.quant[key] = saved
        assert set(out.saturations) <= names and out.saturations.get(node, 0) > 0, (node, key, out.saturations)


def test_a_replaced_gate_table_is_derived_again(monkeypatch):
    """The fused passes' tables are derived once per gate table and exponent: a gate whose table is
    replaced uses the new one."""
    from hardware_sim.fixed_point import SaturationCounter, activation_fixed
    from hardware_sim.fixed_point.activations import GATES
    from hardware_sim.golden.fixed_gate import gate_activation

    x = np.arange(-3000, 3000, 7).reshape(-1, 1)
    before = gate_activation("silu", x, -12, -12, SaturationCounter(), "p")
    np.testing.assert_array_equal(before, activation_fixed("silu", x, -12, -12, SaturationCounter(), "p"))
    monkeypatch.setitem(GATES, "silu", GATES["gelu_erf"])
    after = gate_activation("silu", x, -12, -12, SaturationCounter(), "p")
    np.testing.assert_array_equal(after, activation_fixed("gelu_erf", x, -12, -12, SaturationCounter(), "p"))
    assert not np.array_equal(after, before)
