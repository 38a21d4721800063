"""Process graph: every node kind round-trips through storage; validation names node and sizes."""

import numpy as np
import pytest

import compiler
from compiler.errors import GraphError, ShapeError
from compiler.models import random_llama
from compiler.process import PROCESS_KINDS, ProcessGraph
from compiler.process import nodes as pn

RNG = np.random.default_rng(3)


def example(kind: str):
    """One non-trivial instance of each process kind."""
    return {
        "schedule": lambda: pn.Schedule("s", mode="causal", max_tokens=7, use_padding_mask=False),
        "input_encoder": lambda: pn.InputEncoderNode("i", size=4),
        "output_decoder": lambda: pn.OutputDecoder("o", role="logits", size=4),
        "population": lambda: pn.Population("p", size=4, response="rotary", rope={
            "n_heads": 2, "head_dim": 2, "base": 100.0, "pairing": "interleaved", "rotary_dim": 2}),
        "synapses": lambda: pn.Synapses("w", pre_size=3, post_size=4, weight=RNG.normal(size=(4, 3)),
                                        bias=RNG.normal(size=4), quant={"exp": -3}),
        "norm_astrocyte": lambda: pn.NormAstrocyte("n", weight=RNG.normal(size=4), size=4, mode="rms", eps=1e-6),
        "features": lambda: pn.FeaturePopulation("f", lowering="favor", n_heads=4, n_kv_heads=2, head_dim=3, m=5,
                                                 scale=0.5, schedule="s", projection=RNG.normal(size=(2, 5, 3)),
                                                 seed=9, orthogonal=True),
        "hebbian_synapses": lambda: pn.HebbianSynapses("h", n_heads=4, n_kv_heads=2, m=5, v_head_dim=3, gated=True),
        "astrocyte": lambda: pn.Astrocyte("a", n_heads=4, m=5, v_head_dim=3, offset="none", eps=1e-9),
    }[kind]()


@pytest.mark.parametrize("kind", sorted(PROCESS_KINDS))
def test_every_kind_round_trips(kind, tmp_path):
    node = example(kind)
    g = ProcessGraph("one", meta={"kind": kind})
    g.g.add_node(node.name, op=node)
    path = g.save(tmp_path / "one.tpn")
    back = ProcessGraph.load(path)
    assert back.same_as(g)
    assert type(back.node(node.name)) is type(node)
    assert back.node(node.name).arrays_equal(node)


def test_compiled_network_round_trips(tmp_path):
    net = compiler.compile(random_llama(), lowering="favor", features=8)
    back = ProcessGraph.load(net.save(tmp_path / "net.tpn"))
    assert back.same_as(net)
    assert back.encoder.same_as(net.encoder)
    assert back.meta["layer_outputs"]["layer0.attn"] == "layer0.attn.astrocyte"
    assert set(back.validate()) == set(net.g.nodes)


def test_validation_names_node_and_sizes():
    g = ProcessGraph("bad")
    g.add(pn.InputEncoderNode("x", size=3))
    g.add(pn.Synapses("w", pre_size=4, post_size=2, weight=np.ones((2, 4))), pre="x")
    g.add(pn.OutputDecoder("o", size=2), x="w")
    with pytest.raises(ShapeError, match=r"node 'w' \(synapses\): port 'pre' expects 4 neurons but 'x' has 3"):
        g.validate()


def test_bad_attributes_name_the_node():
    with pytest.raises(GraphError, match=r"node 'f' \(features\).*projection.*\(2, 5, 3\)"):
        pn.FeaturePopulation("f", lowering="favor", n_kv_heads=2, n_heads=2, head_dim=3, m=5,
                             projection=np.ones((2, 4, 3))).check()
    with pytest.raises(GraphError, match="node 'p'.*product neurons take exactly two"):
        pn.Population("p", response="product", fan_in=3).check()
