"""Golden ``loihi2`` steps of learned (Hedgehog) circuits driven into saturation, bit for bit and count
for count against the independent model of conftest.py (Python ints and Fractions); learned runs'
probes and calcium interventions; the streaming helpers against plain sums."""

from collections import Counter
from itertools import product
from types import SimpleNamespace

import numpy as np
import pytest

from compiler.errors import GraphError
from hardware_sim.fixed_point import SaturationCounter
from hardware_sim.golden.fixed_learned import (
    MapParams,
    floating_reciprocal,
    hedgehog_step,
    learned_soma_step,
    logits_step,
    map_params,
    normalise_step,
)
from hardware_sim.golden.stream import FrozenGraph, continue_sum, grow


def big(rng, shape, lo_bits, hi_bits):
    """Signed integers with magnitudes in [2**lo_bits, 2**hi_bits)."""
    mags = np.floor(2.0 ** rng.uniform(lo_bits, hi_bits, shape)).astype(np.int64)
    return np.where(rng.random(shape) < 0.5, -mags, mags)


def counted(counter: SaturationCounter, model: Counter, name: str):
    assert counter.to_dict() == {k: v for k, v in sorted(model.items()) if v}
    assert model[name] > 0, "the inputs were meant to saturate"


def params(rng, N=2, n=3, d=4, x_exp=-10, z_exp=-16, f_exp=-26):
    mant = rng.integers(-128, 128, (N, n, d))
    w_exp = rng.integers(-14, -6, (N, n))
    bias = big(rng, (N, n), 18, 22.9)
    return MapParams(mant, w_exp, bias, x_exp, z_exp, f_exp)


def model_logits(im, p, x, model, name):
    """z[b, h, t, j] by Python ints."""
    B, N, T, d = x.shape
    n = p.mantissa.shape[1]
    z = np.zeros((B, N, T, n), dtype=object)
    for b, h, t, j in product(range(B), range(N), range(T), range(n)):
        acc = sum(int(p.mantissa[h, j, k]) * int(x[b, h, t, k]) for k in range(d))
        s = int(p.w_exp[h, j]) + p.x_exp - p.z_exp
        z[b, h, t, j] = im.sat(im.shift(acc, s) + int(p.bias[h, j]), 24, model, name)
    return z


def model_normalise(im, z, z_exp, f_exp, model, name):
    """One half's softmax of a list of ints."""
    s = max(z)
    p = [im.exp(v - s, z_exp, -22, model, name) for v in z]
    recip = im.reciprocal(sum(p), -22, -22, model, name)
    return [im.sat(im.shift(v * recip, -44 - f_exp), 24, model, name) for v in p]


def test_logits_saturate_under_the_node_name(im):
    rng = np.random.default_rng(1)
    p = params(rng)
    x = big(rng, (2, 2, 3, 4), 16, 22)
    counter, model = SaturationCounter(), Counter()
    got = logits_step(p, x, counter, "maps")
    assert got.tolist() == model_logits(im, p, x, model, "maps").tolist()
    counted(counter, model, "maps")


def test_normalise_saturates_its_features(im):
    rng = np.random.default_rng(2)
    z = big(rng, (2, 3, 5), 14, 20)
    z[0, 0] = [0, 0, 0, 0, 1 << 19]  # one dominant logit: f = 1 at 2**-26 saturates
    counter, model = SaturationCounter(), Counter()
    got = normalise_step(z, -12, -26, counter, "norm")
    for idx in product(range(2), range(3)):
        assert got[idx].tolist() == model_normalise(im, z[idx].tolist(), -12, -26, model, "norm")
    counted(counter, model, "norm")


def test_hedgehog_step_is_both_softmaxes_of_the_logits(im):
    rng = np.random.default_rng(1)
    p = params(rng)
    x = big(rng, (1, 2, 3, 4), 16, 22)
    counter, model = SaturationCounter(), Counter()
    got = hedgehog_step(p, x, counter, "hh")
    z = model_logits(im, p, x, model, "hh")
    for b, h, t in product(range(1), range(2), range(3)):
        zs = [int(v) for v in z[b, h, t]]
        want = (model_normalise(im, zs, p.z_exp, p.f_exp, model, "hh")
                + model_normalise(im, [-v for v in zs], p.z_exp, p.f_exp, model, "hh"))
        assert got[b, h, t].tolist() == want
    counted(counter, model, "hh")


@pytest.mark.parametrize("eps", [0.0, 3e4])
def test_learned_soma_saturates_responses_sums_and_eps(im, eps):
    rng = np.random.default_rng(2)
    c = np.abs(big(rng, (2, 3, 5), 20, 23)).clip(max=2**23 - 1)
    f = np.abs(big(rng, (2, 3, 5), 20, 23)).clip(max=2**23 - 1)
    c[0, 0], f[0, 0] = 0, 0  # a soma that sums nothing
    c_exp, f_exp, z_exp = -20, -22, -10
    counter, model = SaturationCounter(), Counter()
    z, recip, r_exp = learned_soma_step(c, f, c_exp, f_exp, z_exp, eps, counter, "soma")
    eps_q = im.quantize(eps, z_exp, 24, model, "soma") if eps > 0 else 0
    for idx in product(range(2), range(3)):
        rs = [im.sat(im.shift(int(c[idx][j]) * int(f[idx][j]), -22), 24, model, "soma") for j in range(5)]
        zz = im.sat(im.shift(sum(rs), c_exp + f_exp + 22 - z_exp), 24, model, "soma")
        assert int(z[idx]) == zz
        zz += eps_q
        if zz > 0:
            e = -22 - (zz.bit_length() - 1 + z_exp)
            assert int(r_exp[idx]) == e
            assert int(recip[idx]) == im.reciprocal(zz, z_exp, e, model, "soma")
        else:
            assert int(recip[idx]) == 0
    assert recip.dtype == np.int64 and z.dtype == np.int64
    if eps > 0:
        assert eps_q == 2**23 - 1  # the eps itself saturates
    counted(counter, model, "soma")


def test_floating_reciprocal_keeps_22_bits_at_any_size(im):
    z = np.array([1, 3, 2**10 + 1, 2**23 - 1, 0, -5])
    recip, r_exp = floating_reciprocal(z, -7, SaturationCounter(), "r")
    assert recip.dtype == np.int64
    for v, r, e in zip(z.tolist(), recip.tolist(), r_exp.tolist()):
        if v > 0:
            assert e == -22 - (v.bit_length() - 1 - 7)
            assert r == im.reciprocal(v, -7, e, Counter(), "r") and 2**21 <= r <= 2**22
        else:
            assert r == 0


def test_map_bias_saturates_under_the_node_name(im):
    N, d, n = 2, 3, 2
    rng = np.random.default_rng(2)
    op = SimpleNamespace(name="feats", kind="features", k_weight=rng.standard_normal((N, d, n)),
                         k_bias=np.array([[1e9, -1e9], [0.5, 2.0]]),
                         quant={"k_w_exp": [-7] * (N * n), "k_logit_exp": -8, "exp": -20})
    counter, model = SaturationCounter(), Counter()
    p = map_params(op, "k", -9, counter)
    assert p.bias.tolist() == [[im.quantize(float(b), -8, 24, model, "feats") for b in row] for row in op.k_bias]
    assert (p.x_exp, p.z_exp, p.f_exp) == (-9, -8, -20)
    counted(counter, model, "feats")


# ---- streaming helpers ---------------------------------------------------------------------------------


def test_continue_sum_adds_the_writes_after_the_initial_state():
    rng = np.random.default_rng(2)
    write = rng.integers(-50, 50, (2, 3, 4, 5))
    initial = rng.integers(-50, 50, (2, 3, 1, 3))  # fewer slots than the writes: zero-padded
    padded = np.concatenate([initial, np.zeros((2, 3, 1, 2), dtype=initial.dtype)], axis=-1)
    total = continue_sum(write, False, initial)
    assert total.shape == (2, 3, 1, 5)
    for b, g, j in product(range(2), range(3), range(5)):
        assert int(total[b, g, 0, j]) == int(padded[b, g, 0, j]) + sum(int(write[b, g, t, j]) for t in range(4))
    running = continue_sum(write, True, initial)
    for b, g, t, j in product(range(2), range(3), range(4), range(5)):
        assert int(running[b, g, t, j]) == int(padded[b, g, 0, j]) + sum(int(write[b, g, s, j])
                                                                         for s in range(t + 1))


def test_grow_pads_the_last_axis_only():
    x = np.arange(6).reshape(1, 3, 2)  # shape[-2] == 3 == n must not count as grown
    y = grow(x, 3)
    assert y.shape == (1, 3, 3) and y[..., :2].tolist() == x.tolist() and not y[..., 2].any()
    assert grow(x, 2) is x and grow(None, 4) is None


def test_a_frozen_graph_finds_its_nodes_and_refuses_unknown_names():
    from compiler.api import compile as compile_graph
    from compiler.models import random_bert

    net = compile_graph(random_bert(seed=1), max_tokens=4)
    frozen = FrozenGraph(net)
    for name in net.order():
        assert frozen.node(name) is net.node(name)
    with pytest.raises(GraphError, match=r"^no node named 'nowhere' in graph"):
        frozen.node("nowhere")


# ---- learned runs ---------------------------------------------------------------------------------------


def learned(graph, window, T=5):
    import compiler
    from compiler.distill.maps import FeatureMaps, LayerMaps

    rng = np.random.default_rng(0)
    layers = {att.name: LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, 4, att.scale)
              for att in graph.of_kind("attention")}
    net = compiler.compile(graph, lowering="learned", feature_maps=FeatureMaps(layers=layers, window=window),
                           max_tokens=8, precision="loihi2")
    x = rng.standard_normal((2, T, 32))
    mask = np.ones((2, T), bool)
    mask[1, 3:] = False
    return net, x, mask


@pytest.fixture(scope="module")
def learned_net():
    from compiler.models import random_bert

    return learned(random_bert(seed=3), 0)


@pytest.fixture(scope="module")
def window_net():
    from compiler.models import LlamaConfig, random_llama

    return learned(random_llama(LlamaConfig(num_hidden_layers=1, num_key_value_heads=2), seed=4), 3, T=7)


@pytest.fixture(scope="module")
def causal_net():
    from compiler.models import LlamaConfig, random_llama

    return learned(random_llama(LlamaConfig(num_hidden_layers=1, num_key_value_heads=2), seed=4), 0, T=7)


ASTRO = "layer0.attn.astrocyte"


def test_learned_probes_are_the_float_runs_at_every_real_token(learned_net):
    """Calcium and soma probes of the integer run, as values, equal the float run's (measured: 5e-6
    of 2.7 and 1.5e-5 of 3.6); padded tokens are stood in for differently and are not compared."""
    from hardware_sim.golden import simulate

    net, x, mask = learned_net
    probes = ("calcium", "soma")
    fixed = simulate(net, x, mask, precision="loihi2", probes=probes).probes
    ref = simulate(net, x, mask, precision="float64", probes=probes).probes
    for var, tol in (("calcium", 5e-5), ("soma_sum", 2e-4)):
        key = f"{ASTRO}/{var}"
        assert fixed[key].shape == ref[key].shape
        np.testing.assert_allclose(fixed[key][mask], ref[key][mask], rtol=0, atol=tol)
        assert np.abs(ref[key][mask]).max() > 1.0


@pytest.mark.parametrize("which", ["learned_net", "window_net"])
def test_learned_calcium_scale_acts_on_the_integer_run_as_on_the_float_run(request, which):
    """Per-slot calcium scales in [0.5, 1.5]: the outputs agree with the float run (measured 2e-5 of
    2.0) and differ from the unscaled run."""
    from hardware_sim.golden import simulate

    net, x, mask = request.getfixturevalue(which)
    op = net.node(ASTRO)
    scale = {ASTRO: {"calcium_scale": np.random.default_rng(5).uniform(0.5, 1.5, (op.n_heads, op.m))}}
    keep = (ASTRO,)
    fixed = simulate(net, x, mask, precision="loihi2", keep=keep, interventions=scale).values[ASTRO]
    ref = simulate(net, x, mask, precision="float64", keep=keep, interventions=scale).values[ASTRO]
    plain = simulate(net, x, mask, precision="loihi2", keep=keep).values[ASTRO]
    np.testing.assert_allclose(fixed[mask], ref[mask], rtol=0, atol=2e-4)
    assert np.abs(fixed[mask] - plain[mask]).max() > 1e-2


def test_a_calcium_scale_changes_a_windowed_float_run(window_net):
    from hardware_sim.golden import simulate

    net, x, mask = window_net
    op = net.node(ASTRO)
    keep = (ASTRO,)
    scale = np.random.default_rng(5).uniform(0.5, 1.5, (op.n_heads, op.m))
    plain = simulate(net, x, mask, keep=keep).values[ASTRO]
    for factor in (scale, np.ones_like(scale)):
        got = simulate(net, x, mask, keep=keep, interventions={ASTRO: {"calcium_scale": factor}}).values[ASTRO]
        assert np.array_equal(got, plain) == (factor is not scale)


def test_a_large_calcium_scale_saturates_under_the_astrocyte(learned_net):
    from hardware_sim.golden import simulate

    net, x, mask = learned_net
    op = net.node(ASTRO)
    out = simulate(net, x, mask, precision="loihi2",
                   interventions={ASTRO: {"calcium_scale": np.full((op.n_heads, op.m), 300.0)}})
    assert list(out.saturations) == [ASTRO] and out.saturations[ASTRO] > 0


# ---- windowed circuits ----------------------------------------------------------------------------------


def model_exp_parts(im, x, x_exp, model, name):
    """``exp(x 2**x_exp) ~= d 2**(n - 22)`` by the module docstring's steps 1-3."""
    x = im.sat(x, 32, model, name)
    u = im.shift(x * im.LOG2E, x_exp - 30 + 26)
    return im.interpolate(im.EXP2_TABLE, u % 2**26), max(-200, min(200, u >> 26))


def test_exp_parts_keep_every_fraction_bit(im):
    from hardware_sim.golden.fixed_window import exp_parts

    rng = np.random.default_rng(4)
    x = big(rng, (3000,), 0, 30)
    counter, model = SaturationCounter(), Counter()
    d, n = exp_parts(x, -19, counter, "a")
    assert [(int(a), int(b)) for a, b in zip(d, n)] == [model_exp_parts(im, int(v), -19, model, "a") for v in x]
    assert counter.to_dict() == {}


def test_hybrid_step_saturates_responses_and_gains_under_the_node_name(im):
    """Responses ``c f >> 22`` beyond 24 bits, offsets beyond 32 bits and a soma beyond its probe's range."""
    from hardware_sim.golden.fixed_window import HybridParams, hybrid_step

    rng = np.random.default_rng(6)
    p = HybridParams(c_exp=-17, f_exp=-22, s_exp=-19, z_exp=-40, u_exp=-15, v_exp=-18, y_exp=-18)
    c = np.floor(2.0 ** rng.uniform(22.5, 23, (2, 3, 4))).astype(np.int64)
    read = np.floor(2.0 ** rng.uniform(22.5, 23, (2, 3, 4))).astype(np.int64)
    esum, a = np.abs(big(rng, (2, 3), 10, 24)), big(rng, (2, 3), 10, 20)
    a[0, 1], a[1, 2] = 2**32 + 7, -(2**33)
    ev, u = big(rng, (2, 3, 5), 20, 40), big(rng, (2, 3, 5), 10, 23)
    counter, model = SaturationCounter(), Counter()
    y, z = hybrid_step(c, read, esum, ev, a, u, p, counter, "w")
    p_exp = p.c_exp + p.f_exp + 22
    for idx in product(range(2), range(3)):
        rs = [im.sat(im.shift(int(c[idx][j]) * int(read[idx][j]), -22), 24, model, "w") for j in range(4)]
        d, n = model_exp_parts(im, int(a[idx]), p.s_exp, model, "w")
        ze = max(p_exp + n - 22, p.f_exp)
        zz = im.shift(sum(rs) * d, p_exp + n - 22 - ze) + im.shift(int(esum[idx]), p.f_exp - ze)
        assert int(z[idx]) == max(-(2**23), min(2**23 - 1, im.shift(zz, ze - p.z_exp)))
        if zz > 0:
            r_exp = -22 - (zz.bit_length() - 1 + ze)
            recip = im.reciprocal(zz, ze, r_exp, model, "w")
        else:
            recip, r_exp = 0, -22 - ze
        me = max(p.u_exp + n - 22, p.f_exp + p.v_exp)
        for i in range(5):
            mixed = im.shift(int(u[idx][i]) * d, p.u_exp + n - 22 - me) + im.shift(int(ev[idx][i]),
                                                                                  p.f_exp + p.v_exp - me)
            k = max(abs(mixed).bit_length() - 31, 0)
            assert int(y[idx][i]) == im.sat(im.shift(im.shift(mixed, -k) * recip, me + k + r_exp - p.y_exp), 24,
                                            model, "w")
    assert (z == 2**23 - 1).any()
    counted(counter, model, "w")
    assert model["w"] >= 2 + 4  # the two offsets and at least one response per soma


def test_log_gains_saturate_under_the_node_name(im):
    from hardware_sim.golden.fixed_window import log_gain_step

    op = SimpleNamespace(log_gain=np.array([1e9, -0.75, 3.0, -1e9], dtype=np.float32))
    counter, model = SaturationCounter(), Counter()
    got = log_gain_step(op, -19, counter, "gain")
    assert got.dtype == np.int64
    assert got.tolist() == [im.quantize(float(v), -19, 24, model, "gain") for v in op.log_gain]
    counted(counter, model, "gain")


@pytest.mark.parametrize("model,window", [("bert", 0), ("llama", 0), ("llama", 3)])
def test_a_float32_learned_run_stays_float32(model, window):
    """Every kept value and probe of a float32 run of a learned circuit is float32, and close to float64."""
    import compiler
    from compiler.distill.maps import FeatureMaps, LayerMaps
    from compiler.models import LlamaConfig, random_bert, random_llama
    from hardware_sim.golden import simulate

    graph = random_bert(seed=3) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=1), seed=4)
    rng = np.random.default_rng(0)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, 4, att.scale)
        maps.q_bias, maps.k_bias = rng.standard_normal(maps.q_bias.shape), rng.standard_normal(maps.k_bias.shape)
        maps.log_gain = rng.standard_normal(maps.log_gain.shape)
        layers[att.name] = maps
    net = compiler.compile(graph, lowering="learned", feature_maps=FeatureMaps(layers=layers, window=window),
                           max_tokens=8)
    x = graph.encoder.encode(rng.integers(3, 60, (2, 6)))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    keep = [op.name for op in net.nodes() if op.kind != "schedule"]
    out = simulate(net, x, mask, precision="float32", keep=keep, probes={"all"})
    arrays = {**out.outputs, **{k: v for k, v in out.values.items() if isinstance(v, np.ndarray)}, **out.probes}
    wrong = {k: str(v.dtype) for k, v in arrays.items() if v.dtype != np.float32}
    assert arrays and not wrong
    ref = simulate(net, x, mask, precision="float64")
    for role, y in out.outputs.items():
        np.testing.assert_allclose(y, ref.outputs[role], rtol=2e-3, atol=2e-3)


STAGES = {  # node kind, quant entries too fine for the values they hold
    "logits": ("features", {"q_logit_exp": -40, "k_logit_exp": -40}),
    "features": ("features", {"exp": -26}),
    "scores": ("features", {"score_exp": -34}),  # the ring's potentials (with a window)
    "calcium": ("astrocyte", {"calcium_exp": -30}),
    "soma": ("astrocyte", {"soma_exp": -40}),  # without a window (with one, z at e_z is a probe only)
    "output": ("astrocyte", {"exp": -40}),
}


@pytest.mark.parametrize("which,stage", [("learned_net", s) for s in sorted(STAGES) if s != "scores"]
                         + [("window_net", s) for s in sorted(STAGES) if s != "soma"])
def test_every_learned_stage_counts_its_saturations_under_its_node(request, which, stage):
    """Each stage given an exponent too fine for its values clamps them, counted under the node that
    clamped them (and under the nodes downstream whose inputs grew), never raised and never unnamed."""
    from hardware_sim.golden import simulate

    net, x, mask = request.getfixturevalue(which)
    kind, quant = STAGES[stage]
    op = net.of_kind(kind)[0]
    names = {n.name for n in net.nodes()}
    saved = dict(op.quant)
    try:
        op.quant.update(quant)
        out = simulate(net, x, mask, precision="loihi2")
    finally:
        op.quant.clear()
        op.quant.update(saved)
    assert set(out.saturations) <= names and out.saturations.get(op.name, 0) > 0, out.saturations


@pytest.mark.parametrize("which", ["learned_net", "window_net", "causal_net"])
def test_learned_hebbian_weights_saturate_under_their_node(request, which):
    from hardware_sim.golden import simulate

    net, x, mask = request.getfixturevalue(which)
    heb = net.of_kind("hebbian_synapses")[0]
    saved = heb.quant["w_exp"]
    try:
        heb.quant["w_exp"] = saved - 20
        out = simulate(net, x, mask, precision="loihi2")
    finally:
        heb.quant["w_exp"] = saved
    assert set(out.saturations) <= {n.name for n in net.nodes()} and out.saturations.get(heb.name, 0) > 0


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
def test_a_weight_scale_scales_a_causal_learned_output(causal_net, precision):
    """``u = (s H) f(q)`` with the soma unchanged: a weight scale of 1/2 halves the output (exactly in
    float64; measured 2e-4 of 2.8 at loihi2, where H is scaled before each read and rounded)."""
    from hardware_sim.golden import simulate

    net, x, mask = causal_net
    heb = net.of_kind("hebbian_synapses")[0].name
    base = simulate(net, x, mask, precision=precision, keep=(ASTRO,)).values[ASTRO]
    half = simulate(net, x, mask, precision=precision, keep=(ASTRO,),
                    interventions={heb: {"weight_scale": 0.5}}).values[ASTRO]
    np.testing.assert_allclose(half, 0.5 * base, rtol=0, atol=0 if precision == "float64" else 5e-4)
    assert np.abs(base).max() > 1.0
