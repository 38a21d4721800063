"""The pass pipeline: pass manager errors, raw-op attention matching, lowering choices and metadata."""

import json

import numpy as np
import pytest

import compiler
from compiler.attention import NODE_KINDS, AttentionGraph
from compiler.attention import nodes as op
from compiler.attention import raw_nodes as raw
from compiler.errors import PassError
from compiler.models import random_bert, random_gpt2, random_llama
from compiler.passes.base import CompileOptions, Pass, PassManager
from compiler.passes.match_attention import MatchAttention, expand_attention
from compiler.passes.validate import Validate
from compiler.pipeline import compile_graph, passes
from hardware_sim.golden import simulate
from runtime.reference import run_reference


def inputs(g, B=2, T=10):
    x = np.random.default_rng(5).normal(size=(B, T, g.encoder.width))
    mask = np.ones((B, T), dtype=bool)
    mask[1, 6:] = False
    return x, mask


@pytest.mark.parametrize("kind", sorted(raw.RAW_KINDS))
def test_raw_kinds_are_registered_and_round_trip(kind, tmp_path):
    assert kind in NODE_KINDS
    g = expand_attention(random_llama())
    node = next(n for n in g.nodes() if n.kind == kind)
    attrs, arrays = node.to_record()
    assert type(node).from_record(json.loads(json.dumps(attrs)), arrays, "t").arrays_equal(node)
    assert AttentionGraph.load(g.save(tmp_path / "raw.tpg")).same_as(g)


@pytest.mark.parametrize("build", [random_bert, random_llama, random_gpt2])
def test_matching_raw_attention_keeps_reference_output(build):
    g = build()
    expanded = expand_attention(g)
    assert not expanded.of_kind("attention") and expanded.of_kind("softmax")
    x, mask = inputs(g)
    before = run_reference(expanded, x, mask).outputs
    matched = MatchAttention().run(expanded, CompileOptions())
    after = run_reference(matched, x, mask).outputs
    assert len(matched.of_kind("attention")) == len(g.of_kind("attention"))
    assert not any(n.kind in raw.RAW_KINDS for n in matched.nodes())
    assert matched.same_as(g)
    for role in before:
        np.testing.assert_array_equal(after[role], before[role])
    net = compiler.compile(expanded, max_tokens=16)
    np.testing.assert_allclose(simulate(net, x, mask).outputs["hidden"], before["hidden"], rtol=1e-9, atol=1e-12)


def test_unmatched_raw_op_names_node_and_pass():
    g = expand_attention(random_bert())
    g.add(op.Output("peek", role="peek"), x="layer0.attn.probs")  # softmax now has two users
    with pytest.raises(PassError, match=r"pass 'match_attention' failed after passes run before: validate: "
                                        r"node 'layer0.attn.*is not part of a recognised attention chain"):
        compiler.compile(g)


class Boom(Pass):
    name = "boom"
    requires = ("lowered",)

    def run(self, graph, options):
        raise ValueError("kaput")


def test_pass_manager_names_failing_pass_and_history():
    options = CompileOptions()
    manager = PassManager(passes(options) + [Boom()])
    with pytest.raises(PassError, match="pass 'boom' crashed after passes run before: validate, match_attention, "
                                        "budget, lower_attention, lower_ops: ValueError: kaput"):
        manager.run(random_bert(), options)
    with pytest.raises(PassError, match=r"pass 'boom' requires \['lowered'\]"):
        PassManager([Validate(), Boom()]).run(random_bert(), options)


def test_unknown_per_layer_name_is_refused():
    with pytest.raises(PassError, match="validate.*unknown node 'layer9.attn'.*layer0.attn, layer1.attn"):
        compiler.compile(random_bert(), per_layer={"layer9.attn": "favor"})


def test_per_layer_lowering_and_metadata():
    seen = []
    net = compiler.compile(random_llama(), lowering="exact", per_layer={"layer1.attn": "favor"}, features=24,
                           seed=3, max_tokens=20, progress=seen.append)
    assert seen == ["validate", "match_attention", "budget", "lower_attention", "lower_ops"]
    assert net.node("layer0.attn.features").lowering == "exact" and net.node("layer0.attn.features").m == 20
    f1 = net.node("layer1.attn.features")
    assert f1.lowering == "favor" and f1.m == 24 and f1.projection.shape == (2, 24, 8)
    assert net.node("layer0.attn.schedule").mode == "causal"
    assert net.meta["per_layer"] == {"layer0.attn": "exact", "layer1.attn": "favor"}
    assert {k: net.meta[k] for k in ("family", "pooling", "lowering", "precision")} == {
        "family": "llama", "pooling": "last", "lowering": "exact", "precision": "float64"}
    assert net.meta["layer_outputs"] == {"layer0.mlp.residual": "layer0.mlp.residual",
                                         "layer1.mlp.residual": "layer1.mlp.residual",
                                         "layer0.attn": "layer0.attn.astrocyte", "layer1.attn": "layer1.attn.astrocyte"}
    assert net.encoder is not None and net.encoder.width == 32


def test_lowering_shapes_and_fusion():
    net = compiler.compile(random_bert(), lowering="taylor2")
    f = net.node("layer0.attn.features")
    assert f.m == 1 + 8 + 64 and net.node("layer0.attn.astrocyte").offset == "none"
    assert net.node("layer0.attn.schedule").mode == "bidirectional"
    act = net.node("layer0.mlp.act")
    assert act.kind == "population" and act.response == "gelu_erf"
    assert net.inputs_of("layer0.mlp.act") == {"in0": "layer0.mlp.up.synapses"}
    assert "layer0.mlp.up" not in net
    res = net.node("layer0.attn.residual")
    assert res.fan_in == 2 and all(net.node(s).weight is None for s in net.inputs_of(res.name).values())
    assert net.node("embeddings.norm").kind == "norm_astrocyte"
    assert compiler.compile(random_bert(), lowering="elu1").node("layer0.attn.features").m == 8


def test_compile_from_saved_graph_and_same_projection_for_same_seed(tmp_path):
    path = random_gpt2().save(tmp_path / "g.tpg")
    a = compiler.compile(str(path), lowering="favor", features=16, seed=1, orthogonal=True)
    b = compiler.compile(random_gpt2(), lowering="favor", features=16, seed=1, orthogonal=True)
    c = compiler.compile(random_gpt2(), lowering="favor", features=16, seed=2, orthogonal=True)
    pa, pb, pc = (n.node("layer0.attn.features").projection for n in (a, b, c))
    assert np.array_equal(pa, pb) and not np.allclose(pa, pc)
    assert not np.allclose(pa, a.node("layer1.attn.features").projection)


def test_compile_graph_direct_and_debug_validation():
    net = compile_graph(random_bert(), CompileOptions(debug=True))
    assert net.validate()
