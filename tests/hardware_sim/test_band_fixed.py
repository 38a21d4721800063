"""An encoder's window (the W keys nearest each query) at the ``loihi2`` precision on the golden simulator:
close to float, free of saturation over a whole context, and equal bit for bit to a slow model that
walks every read and every key with Python integers."""

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.models import random_bert
from hardware_sim.fixed_point import STATE_BITS, SaturationCounter, saturate, shift
from hardware_sim.golden import simulate
from hardware_sim.golden.fixed_circuit import hebbian_read_step
from hardware_sim.golden.fixed_features import score_params, score_step, slot_response_step
from hardware_sim.golden.fixed_learned import hedgehog_step, map_params
from hardware_sim.golden.fixed_registry import qexp
from hardware_sim.golden.fixed_window import hybrid_params, hybrid_step, log_gain_step


def random_maps(graph, features, window, seed=0):
    rng = np.random.default_rng(seed)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
        maps.q_bias = rng.standard_normal(maps.q_bias.shape)
        maps.k_bias = rng.standard_normal(maps.k_bias.shape)
        maps.log_gain = rng.standard_normal(maps.log_gain.shape)
        layers[att.name] = maps
    return FeatureMaps(layers=layers, window=window)


def compiled(precision, window, max_tokens=16):
    graph = random_bert(seed=3)
    return graph, compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, window),
                                   max_tokens=max_tokens, precision=precision)


def tokens(width, B=2, T=7, seed=1):
    rng = np.random.default_rng(seed)
    mask = np.ones((B, T), bool)
    mask[1, 5:] = False
    mask[0, 2] = False  # a hole: a token never written, inside other tokens' bands
    return rng.standard_normal((B, T, width)), mask


@pytest.mark.parametrize("window", [3, 4, 17])
def test_loihi2_band_is_close_to_float(window):
    """Measured (seeds here): the integer circuit differs from float on its own rounded weights by at
    1.0e-5 of the output's range (W = 3, 4, 17), and the whole loihi2 network from the float network by
    1.3-1.5%, as the causal window (bounds as in test_learned_fixed.py)."""
    graph, fixed = compiled("loihi2", window)
    _, flt = compiled("float64", window)
    x, mask = tokens(graph.encoder.width)
    got = simulate(fixed, x, mask, precision="loihi2")
    assert got.saturations == {}
    same_weights = simulate(fixed, x, mask, precision="float64").outputs
    reference = simulate(flt, x, mask, precision="float64").outputs
    for role, y in got.outputs.items():
        scale = np.abs(reference[role][mask]).max()
        assert np.abs(y - same_weights[role])[mask].max() < 3e-4 * scale, role
        assert np.abs(y - reference[role])[mask].max() < 0.03 * scale, role
        assert np.abs(y - reference[role])[mask].max() > 1e-4 * scale, role


def test_a_context_of_max_tokens_does_not_saturate():
    graph, net = compiled("loihi2", 5, max_tokens=24)
    x = np.repeat(np.random.default_rng(0).standard_normal((1, 1, graph.encoder.width)), 24, axis=1)
    assert simulate(net, x, np.ones((1, 24), bool), precision="loihi2").saturations == {}


def integers(values, net, name):
    return np.rint(values[name] / 2.0 ** qexp(net.node(name))).astype(np.int64)


def slow_circuit(net, values, mask, prefix="layer0.attn"):
    """The astrocyte's output integers (B, T, H dv), one read and one key at a time: the feature memory
    a read sees is summed over the written tokens *outside* its band (not the total minus the band),
    the slots over the written tokens inside it."""
    feats, syn, astro = (net.node(f"{prefix}.{n}") for n in ("features", "hebbian", "astrocyte"))
    ins = net.inputs_of(feats.name)
    key, query = integers(values, net, ins["key"]), integers(values, net, ins["query"])
    v_all = integers(values, net, net.inputs_of(syn.name)["teacher"])
    k_exp, q_exp = qexp(net.node(ins["key"])), qexp(net.node(ins["query"]))
    v_exp = qexp(net.node(net.inputs_of(syn.name)["teacher"]))
    counter = SaturationCounter()
    kp, qp = map_params(feats, "k", k_exp), map_params(feats, "q", q_exp)
    sp = score_params(feats, q_exp, k_exp)
    p = hybrid_params(astro, feats, syn, v_exp)
    w_exp, u_exp, f_exp = qexp(syn, "w_exp"), qexp(syn), qexp(feats)
    log_gain = log_gain_step(feats, p.s_exp, counter, "")
    H, G, d, W = feats.n_heads, feats.n_kv_heads, feats.head_dim, feats.window
    B, T = mask.shape
    dv = v_all.shape[-1] // G
    out = np.zeros((B, T, H * dv), dtype=np.int64)
    for b in range(B):
        for h in range(H):
            g = h // (H // G)
            k = key[b, :, g * d : (g + 1) * d]
            v = v_all[b, :, g * dv : (g + 1) * dv]
            fk = [hedgehog_step(kp, k[j][None, None, None], counter, "")[0, g, 0] for j in range(T)]
            for i in range(T):
                q = query[b, i, h * d : (h + 1) * d]
                fq = hedgehog_step(qp, q[None, None, None].repeat(H, axis=1), counter, "")[0, h, 0]
                band = [j for j in range(T) if mask[b, j] and -(W // 2) <= j - i <= (W - 1) // 2]
                rest = [j for j in range(T) if mask[b, j] and j not in band]
                c = [sum(int(fk[j][n]) for j in rest) for n in range(feats.m)]
                c = saturate(shift(np.array(c, dtype=np.int64), f_exp - p.c_exp), STATE_BITS, counter, "")
                A = [[sum(int(v[j][a]) * int(fk[j][n]) for j in rest) for n in range(feats.m)] for a in range(dv)]
                Hw = saturate(shift(np.array(A, dtype=np.int64), v_exp + f_exp - w_exp), STATE_BITS, counter, "")
                u = hebbian_read_step(Hw, fq[None], f_exp, w_exp, u_exp, counter, "")[0]
                if band:
                    pot = np.array([score_step(sp, q[None], k[j][None], counter, "")[0, 0] for j in band])
                    e, s = slot_response_step(pot[None], np.ones((1, len(band)), bool), p.s_exp, p.f_exp, counter, "")
                    e, s = e[0], int(s[0])
                    ev = np.array([sum(int(e[n]) * int(v[j][a]) for n, j in enumerate(band)) for a in range(dv)])
                    esum = int(e.sum())
                else:
                    s, esum, ev = 0, 0, np.zeros(dv, dtype=np.int64)
                y, _ = hybrid_step(c[None], fq[None], np.array([esum]), ev[None], np.array([log_gain[h] - s]),
                                   u[None], p, counter, "")
                out[b, i, h * dv : (h + 1) * dv] = y[0]
    return out


@pytest.mark.parametrize("window", [3, 4, 17])
def test_golden_band_equals_a_slow_model_of_its_equations_bit_for_bit(window):
    """W = 3 (r = 1), 4 (one more key after the query than before) and 17 (r = 8 >= T: every key)."""
    graph, net = compiled("loihi2", window)
    x, mask = tokens(graph.encoder.width, T=6)
    keep = ("layer0.attn.k", "layer0.attn.q", "layer0.attn.v", "layer0.attn.astrocyte")
    got = simulate(net, x, mask, precision="loihi2", keep=keep)
    want = slow_circuit(net, got.values, mask)
    assert np.array_equal(integers(got.values, net, "layer0.attn.astrocyte"), want)


def test_loihi2_band_state_probes_follow_float():
    """Calcium (every written token) and Hebbian weights at loihi2 against the float circuit on the same
    rounded weights: measured 2.0e-6 to 5.0e-6 of each probe's range (seeds here)."""
    graph, net = compiled("loihi2", 3)
    x, mask = tokens(graph.encoder.width)
    got = simulate(net, x, mask, precision="loihi2", probes=("calcium", "weights")).probes
    want = simulate(net, x, mask, precision="float64", probes=("calcium", "weights")).probes
    keys = {f"layer{i}.attn.{node}" for i in (0, 1) for node in ("astrocyte/calcium", "hebbian/weights")}
    assert keys <= set(got) and set(got) == set(want)
    for key in keys:
        assert np.abs(got[key] - want[key]).max() <= 2e-5 * np.abs(want[key]).max(), key


@pytest.mark.parametrize("node", ["calcium", "weights", "both"])
def test_loihi2_band_interventions_follow_float_per_sequence(node):
    """Each sequence's own calcium and weight scales (0.3 and 0.8) at loihi2 against float on the same
    rounded weights: measured 4e-6 to 1.5e-5 of the output's range, for an effect of 15-18%."""
    graph, net = compiled("loihi2", 3)
    x, mask = tokens(graph.encoder.width)
    astro, hebb = net.node("layer0.attn.astrocyte"), net.node("layer0.attn.hebbian")
    alpha = np.array([0.3, 0.8])
    actions = {}
    if node in ("calcium", "both"):
        actions[astro.name] = {"calcium_scale": alpha[:, None, None] * np.ones((2, astro.n_heads, astro.m))}
    if node in ("weights", "both"):
        shape = (2, hebb.n_kv_heads, hebb.v_head_dim, hebb.m)
        actions[hebb.name] = {"weight_scale": alpha[::-1, None, None, None] * np.ones(shape)}
    got = simulate(net, x, mask, precision="loihi2", interventions=actions).outputs["hidden"]
    want = simulate(net, x, mask, precision="float64", interventions=actions).outputs["hidden"]
    plain = simulate(net, x, mask, precision="float64").outputs["hidden"]
    scale = np.abs(want[mask]).max()
    assert np.abs(got - want)[mask].max() < 5e-5 * scale
    assert np.abs(want - plain)[mask].max() > 0.05 * scale


def test_forced_saturation_is_counted_at_the_band_circuits_own_nodes(squeeze):
    graph, net = compiled("loihi2", 3)
    x, mask = tokens(graph.encoder.width)
    counts = simulate(squeeze(net), x, mask, precision="loihi2").saturations
    circuit = {"layer0.attn.features", "layer0.attn.astrocyte", "layer0.attn.hebbian"}
    assert circuit <= set(counts) and all(isinstance(name, str) and name in net for name in counts)
