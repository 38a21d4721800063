"""Golden ``loihi2`` step functions driven into saturation at every stage, bit for bit and count for
count against the independent model of conftest.py (each clamped value is counted under the node's
name, none is lost or raised), plus the registries' refusals and the refusals of scales no 32-bit
word holds."""

import math
from collections import Counter
from itertools import product
from types import SimpleNamespace

import numpy as np
import pytest

from compiler.errors import SimulationError
from hardware_sim.fixed_point import SaturationCounter
from hardware_sim.golden.fixed_circuit import gated_output_step, hebbian_read_step, scale_q22, soma_step
from hardware_sim.golden.fixed_features import ScoreParams, score_params, score_step
from hardware_sim.golden.fixed_neurons import norm_params, norm_step, population_step, synapse_params
from hardware_sim.golden.fixed_registry import Fx, fixed_behaviour, qexp
from hardware_sim.golden.registry import behaviour

RNG = np.random.default_rng(11)


def big(shape, lo_bits, hi_bits):
    """Signed integers with magnitudes in [2**lo_bits, 2**hi_bits)."""
    mags = np.floor(2.0 ** RNG.uniform(lo_bits, hi_bits, shape)).astype(np.int64)
    return np.where(RNG.random(shape) < 0.5, -mags, mags)


def counted(counter: SaturationCounter, model: Counter, name: str):
    assert counter.to_dict() == {k: v for k, v in sorted(model.items()) if v}
    assert model[name] > 0, "the inputs were meant to saturate"


@pytest.mark.parametrize("eps", [0.0, 100.0])
def test_soma_step_saturates_responses_sums_and_quotients(im, eps):
    c = np.abs(big((2, 2, 3, 5), 21, 23.5)).clip(max=2**23 - 1)
    f = np.abs(big((2, 2, 3, 5), 21, 23.5)).clip(max=2**23 - 1)
    c[0, 0] = 1  # tiny somas: their reciprocal saturates
    f[0, 0] = 2**22
    c_exp, f_exp, z_exp, r_exp = -20, -22, -18, -12
    counter, model = SaturationCounter(), Counter()
    r, p_exp, z, recip, alive = soma_step(c, f, c_exp, f_exp, z_exp, r_exp, eps, counter, "soma")
    eps_q = im.quantize(eps, z_exp, 24, model, "soma") if eps > 0 else 0
    for idx in product(range(2), range(2), range(3)):
        rs = [im.sat(im.shift(int(c[idx][j]) * int(f[idx][j]), -22), 24, model, "soma") for j in range(5)]
        zz = im.sat(im.shift(sum(rs), p_exp - z_exp), 24, model, "soma")
        assert r[idx].tolist() == rs and int(z[idx]) == zz
        if eps > 0:
            want = im.reciprocal(zz + eps_q, z_exp, r_exp, model, "soma")
        else:
            want = im.reciprocal(zz, z_exp, r_exp, model, "soma") if zz > 0 else 0
        assert int(recip[idx]) == want
    assert recip.dtype == np.int64 and alive.dtype == bool
    counted(counter, model, "soma")


@pytest.mark.parametrize("n_kv", [1, 2])
def test_gated_output_saturates_gates_and_outputs(im, n_kv):
    r, recip = np.abs(big((2, 2, 3, 4), 20, 23)), np.abs(big((2, 2, 3), 18, 23))
    H = big((2, n_kv, 5, 4), 20, 23)
    p_exp, r_exp, w_exp, y_exp = -40, -8, -12, -20
    counter, model = SaturationCounter(), Counter()
    y = gated_output_step(r, recip, H, p_exp, r_exp, w_exp, y_exp, n_kv, counter, "gate")
    for b, h, t in product(range(2), range(2), range(3)):
        a = [im.sat(im.shift(int(r[b, h, t, j]) * int(recip[b, h, t]), p_exp + r_exp + 22), 24, model, "gate")
             for j in range(4)]
        g = h // (2 // n_kv)
        for i in range(5):
            acc = sum(int(H[b, g, i, j]) * a[j] for j in range(4))
            assert int(y[b, h, t, i]) == im.sat(im.shift(acc, -22 + w_exp - y_exp), 24, model, "gate")
    counted(counter, model, "gate")


def test_hebbian_read_saturates(im):
    H, fq = big((2, 4, 5), 20, 23), big((2, 6, 5), 20, 23)
    counter, model = SaturationCounter(), Counter()
    u = hebbian_read_step(H, fq, -20, -16, -30, counter, "heb")
    for b, t, i in product(range(2), range(6), range(4)):
        acc = sum(int(H[b, i, j]) * int(fq[b, t, j]) for j in range(5))
        assert int(u[b, t, i]) == im.sat(im.shift(acc, -16 - 20 + 30), 24, model, "heb")
    counted(counter, model, "heb")


def test_score_step_saturates_its_accumulator(im):
    p = ScoreParams(scale=6000000, scale_exp=-25, qk_exp=-10, score_exp=-14)
    q, keys = big((2, 3, 4), 20, 24), big((2, 5, 4), 20, 24)
    counter, model = SaturationCounter(), Counter()
    got = score_step(p, q, keys, counter, "score")
    a_exp = p.score_exp - p.scale_exp - 23
    for b, t, j in product(range(2), range(3), range(5)):
        acc = sum(int(q[b, t, d]) * int(keys[b, j, d]) for d in range(4))
        a = im.sat(im.shift(acc, p.qk_exp - a_exp), 32, model, "score")
        assert int(got[b, t, j]) == im.sat(im.shift(a * p.scale, -23), 24, model, "score")
    counted(counter, model, "score")


def test_a_causal_query_sees_zero_for_later_slots():
    p = ScoreParams(scale=2**22, scale_exp=-22, qk_exp=0, score_exp=0)
    q, keys = np.ones((1, 2, 1), np.int64), np.full((1, 2, 1), 3, np.int64)
    visible = np.array([[True, False], [True, True]])
    assert score_step(p, q, keys, SaturationCounter(), "s", visible).tolist() == [[[3, 0], [3, 3]]]


def test_non_positive_score_scales_are_refused():
    for scale in (0.0, -0.5):
        op = SimpleNamespace(scale=scale, name="feat", kind="features", quant={"score_exp": -12})
        with pytest.raises(SimulationError, match=rf"^golden loihi2: node 'feat' has a non-positive scale {scale}$"):
            score_params(op, -10, -9)


def norm_op(n, bias, weight=None):
    return SimpleNamespace(name="ln", kind="norm_astrocyte", size=n, mode="layer", eps=1e-5,
                           weight=np.ones(n) if weight is None else weight, bias=bias,
                           quant={"exp": -4, "gain_exp": -16})


def test_norm_saturates_its_bias_its_quotient_and_its_output(im):
    n = 6
    counter, model = SaturationCounter(), Counter()
    p = norm_params(norm_op(n, np.array([1e9, -1e9, 0.5, 0, 0, 0])), -14, counter)
    assert p.bias.tolist() == [im.quantize(v, -4, 24, model, "ln") for v in (1e9, -1e9, 0.5, 0, 0, 0)]
    x = np.zeros((3, n), dtype=np.int64)
    x[0] = [2**22, -(2**22), 2**22, -(2**22), 5, 7]  # a large spread
    x[1] = [3, 3, 3, 3, 3, 4]  # almost no spread: the quotient saturates
    x[2] = [1, -1, 0, 0, 0, 0]
    y, r = norm_step(p, x, counter, "ln")
    s = p.inv_shift
    for row in range(3):
        xs = [int(v) for v in x[row]]
        c = [v - im.shift(sum(xs) * p.inv_n, -s) for v in xs]
        rr = im.rsqrt(sum(v * v for v in c) + p.eps, -28, p.r_exp, model, "ln")
        assert int(r[row]) == rr
        t = [im.sat(im.shift(v * rr, -14 + p.r_exp + 22), 24, model, "ln") for v in c]
        out = [im.shift(tv * int(gv), -22 + p.gain_exp + 4) + int(bv) for tv, gv, bv in zip(t, p.gain, p.bias)]
        assert y[row].tolist() == [im.sat(o, 24, model, "ln") for o in out]
    counted(counter, model, "ln")


def test_norm_params_of_float32_and_integer_weights_equal_float64():
    n = 8
    w = RNG.normal(1, 0.3, n)
    base = norm_params(norm_op(n, None, w), -14, SaturationCounter())
    for weight in (w.astype(np.float32).astype(np.float64), w.astype(np.float32)):
        got = norm_params(norm_op(n, None, weight), -14, SaturationCounter())
        ref = norm_params(norm_op(n, None, weight.astype(np.float64)), -14, SaturationCounter())
        assert got.gain.tolist() == ref.gain.tolist() and got.gain_exp == ref.gain_exp
    assert base.gain.dtype == np.int64


def test_norm_eps_is_clamped_at_2_to_62():
    op = SimpleNamespace(**{**vars(norm_op(4, None)), "eps": 1e30})
    assert norm_params(op, -40, SaturationCounter()).eps == 2**62


def test_synapse_bias_saturates_under_the_node_name(im):
    op = SimpleNamespace(name="syn", kind="synapses", weight=None, bias=np.array([1e9, 0.25, -1e9]),
                         quant={"exp": -8, "w_exp": 0})
    counter, model = SaturationCounter(), Counter()
    p = synapse_params(op, -8, counter, "syn")
    assert p.bias.tolist() == [im.quantize(v, -8, 24, model, "syn") for v in (1e9, 0.25, -1e9)]
    assert (p.mantissa, p.w_exp) == (None, 0)
    counted(counter, model, "syn")


@pytest.mark.parametrize("response", ["identity", "product", "rotary", "gelu_erf"])
def test_population_saturations_are_counted_under_the_population(im, response):
    rope = {"n_heads": 1, "head_dim": 4, "rotary_dim": 4, "pairing": "half", "base": 10000.0}
    op = SimpleNamespace(name="pop", kind="population", response=response, rope=rope,
                         quant={"in_exp": -10, "exp": -16})
    x = Fx(np.array([[[2**23 - 1, -(2**23), 2**22, 3]]], dtype=np.int64), -10)
    inputs = [x, x] if response == "product" else [x]
    counter = SaturationCounter()
    out = population_step(op, inputs, np.zeros((1, 1), dtype=np.int64), counter)
    assert out.dtype == np.int64 and int(np.abs(out).max()) in (2**23 - 1, 2**23)
    assert set(counter.to_dict()) == {"pop"} and counter.total >= 2


def test_scale_q22_refuses_a_scale_beyond_32_bits(im):
    x = np.array([1, -2, 3])
    assert scale_q22(x, 511.0, SaturationCounter(), "w").tolist() == [
        im.sat(im.shift(int(v) * im.quantize(511.0, -22, 32), -22), 24) for v in x]
    with pytest.raises(SimulationError, match="overflow 32 bits"):
        scale_q22(x, 512.0, SaturationCounter(), "w")


def test_a_behaviour_is_registered_once():
    with pytest.raises(TypeError, match=r"^golden behaviour for 'population' registered twice$"):
        behaviour("population")(lambda op, args, run: None)
    with pytest.raises(TypeError, match=r"^fixed-point behaviour for 'population' registered twice$"):
        fixed_behaviour("population")(lambda op, args, run: None)


def test_fresh_kinds_register_and_run():
    from hardware_sim.golden.fixed_registry import FIXED_BEHAVIOURS
    from hardware_sim.golden.registry import BEHAVIOURS

    def fn(op, args, run):
        return 42

    try:
        assert behaviour("test_only_kind")(fn) is fn and BEHAVIOURS["test_only_kind"] is fn
        assert fixed_behaviour("test_only_kind")(fn) is fn and FIXED_BEHAVIOURS["test_only_kind"] is fn
    finally:
        BEHAVIOURS.pop("test_only_kind", None)
        FIXED_BEHAVIOURS.pop("test_only_kind", None)


def test_a_missing_exponent_says_how_to_get_it():
    op = SimpleNamespace(name="p", kind="population", quant={})
    with pytest.raises(SimulationError, match=r"^golden loihi2: node 'p' \(population\) has no quant\['in_exp'\]; "
                                              r"compile with precision='loihi2' so the quantize pass records its "
                                              r"exponents$"):
        qexp(op, "in_exp")
    assert qexp(SimpleNamespace(name="p", kind="x", quant={"exp": "-7"})) == -7
    assert math.isclose(Fx(np.array([3]), -2).value()[0], 0.75)


# ---- the simulator's front door: refusals, probes, positions, interventions, streams ----------------
@pytest.fixture(scope="module")
def bert_net():
    from compiler.api import compile as compile_model
    from compiler.models import random_bert

    graph = random_bert(seed=5)
    net = compile_model(graph, max_tokens=8)
    x = graph.encoder.encode(np.random.default_rng(0).integers(3, 60, (2, 4)))
    return net, x


def test_simulate_refusals_name_the_problem(bert_net):
    from compiler.errors import InputError
    from hardware_sim.golden import simulate

    net, x = bert_net
    with pytest.raises(InputError, match=r"^golden simulator runs float64, float32 or loihi2, not 'float16'$"):
        simulate(net, x, precision="float16")
    with pytest.raises(InputError, match=r"^unknown probe\(s\) \['spikes'\]; choose from calcium, soma, weights, "
                                         r"activity or all$"):
        simulate(net, x, probes={"spikes"})
    with pytest.raises(InputError, match=r"^positions must have shape \(2, 4\), got \(2, 3\)$"):
        simulate(net, x, positions=np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(InputError, match=r"got \(2, 4, 31\)$"):
        simulate(net, x[..., :-1])


def test_all_probes_are_every_kind(bert_net):
    from hardware_sim.golden import simulate

    net, x = bert_net
    every = simulate(net, x, probes={"all"}).probes
    each = {}
    for kind in ("calcium", "soma", "weights", "activity"):
        each.update(simulate(net, x, probes={kind}).probes)
    assert sorted(every) == sorted(each) and every
    for key in every:
        np.testing.assert_array_equal(every[key], each[key])


def test_intervention_refusals_name_node_action_and_shape(bert_net):
    from hardware_sim.golden import simulate

    net, x = bert_net
    astro, heb = "layer0.attn.astrocyte", "layer0.attn.hebbian"
    H, m = net.node(astro).n_heads, net.node(astro).m
    pop = net.of_kind("population")[0].name
    cases = [
        ({"nowhere": {"calcium_scale": 1.0}}, r"^golden: intervention names unknown node 'nowhere'$"),
        ({pop: {"calcium_scale": 1.0}}, rf"^golden: node '{pop}' \(population\) has no intervention "
                                        r"'calcium_scale'; available: none$"),
        ({heb: {"calcium_scale": 1.0}}, rf"^golden: node '{heb}' \(hebbian_synapses\) has no intervention "
                                        r"'calcium_scale'; available: weight_scale$"),
        ({astro: {"calcium_scale": np.ones((H, m + 1))}}, rf"^golden: intervention 'calcium_scale' on '{astro}' has "
                                                          rf"shape \({H}, {m + 1}\); expected \(batch,\) \+ "
                                                          rf"\({H}, {m}\) or \({H}, {m}\)$"),
        ({astro: {"calcium_scale": np.ones((3, H, m))}}, rf"^golden: intervention 'calcium_scale' on '{astro}' has "
                                                         r"batch 3, input batch is 2$"),
    ]
    for interventions, message in cases:
        with pytest.raises(SimulationError, match=message):
            simulate(net, x, interventions=interventions)


def test_per_sequence_interventions_act_on_their_sequence_only(bert_net):
    from hardware_sim.golden import simulate

    net, x = bert_net
    astro = "layer0.attn.astrocyte"
    H, m = net.node(astro).n_heads, net.node(astro).m
    scale = np.ones((2, H, m))
    scale[1, :, 0] = 0.0  # silence token 0 in sequence 1 only
    keep = (astro,)
    base = simulate(net, x, keep=keep).values[astro]
    out = simulate(net, x, keep=keep, interventions={astro: {"calcium_scale": scale}}).values[astro]
    np.testing.assert_array_equal(out[0], base[0])
    assert not np.allclose(out[1], base[1])
    same = simulate(net, x, keep=keep, interventions={astro: {"calcium_scale": [[1.0] * m] * H}}).values[astro]
    np.testing.assert_array_equal(same, base)


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
def test_a_run_in_two_halves_equals_one_run(precision):
    """A stream continued from the first half's state gives the second half of one whole run."""
    from compiler.api import compile as compile_model
    from compiler.models import LlamaConfig, random_llama
    from hardware_sim.golden import simulate

    graph = random_llama(LlamaConfig(num_hidden_layers=1), seed=2)
    net = compile_model(graph, max_tokens=8, precision=precision)
    x = graph.encoder.encode(np.random.default_rng(1).integers(3, 60, (1, 6)))
    whole = simulate(net, x, precision=precision)
    first = simulate(net, x[:, :4], precision=precision)
    assert first.stream.start == 4
    second = simulate(net, x[:, 4:], precision=precision, stream=first.stream)
    assert second.stream.start == 6 and set(second.stream.nodes) == set(first.stream.nodes)
    for role, y in whole.outputs.items():
        np.testing.assert_allclose(second.outputs[role], y[:, 4:], rtol=0, atol=1e-12)
    shifted = simulate(net, x[:, 4:], precision=precision, stream=first.stream, positions=np.array([[4, 5]]))
    for role in whole.outputs:
        np.testing.assert_array_equal(shifted.outputs[role], second.outputs[role])


@pytest.mark.parametrize("lowering", ["exact", "favor", "taylor2", "elu1", "relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_a_float32_run_stays_float32(lowering, causal):
    """Every kept value and probe of a float32 run is float32 (no float64 state creeps in)."""
    from compiler.api import compile as compile_model
    from compiler.models import LlamaConfig, random_bert, random_llama
    from hardware_sim.golden import simulate

    graph = random_llama(LlamaConfig(num_hidden_layers=1), seed=4) if causal else random_bert(seed=4)
    net = compile_model(graph, max_tokens=8, lowering=lowering, features=16)
    x = graph.encoder.encode(np.random.default_rng(2).integers(3, 60, (2, 4)))
    keep = [op.name for op in net.nodes() if op.kind not in ("schedule",)]
    out = simulate(net, x, precision="float32", keep=keep, probes={"all"})
    arrays = {**out.outputs, **{k: v for k, v in out.values.items() if isinstance(v, np.ndarray)}, **out.probes}
    assert arrays
    wrong = {k: str(v.dtype) for k, v in arrays.items() if v.dtype != np.float32}
    assert not wrong
    ref = simulate(net, x, precision="float64", keep=keep)
    for role, y in out.outputs.items():
        np.testing.assert_allclose(y, ref.outputs[role], rtol=2e-3, atol=2e-3)
