"""What `report` counts for an encoder's learned window: memory per head W + 2m, as for a decoder's ring,
no extra Lava steps, and the replayed keys and values in the schedule's delay lines beside the queries'."""

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.models import random_bert
from hardware_sim.chip import load_chip, resources
from hardware_sim.chip.counts import counted
from hardware_sim.lava.schedule import lava_steps


def compiled(window):
    graph = random_bert(seed=1)
    rng = np.random.default_rng(0)
    maps = FeatureMaps(window=window, layers={a.name: LayerMaps.initial(rng, a.n_heads, a.n_kv_heads, a.head_dim, 4,
                                                                        a.scale) for a in graph.of_kind("attention")})
    return compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=16)


@pytest.mark.parametrize("window", [3, 17])
def test_memory_per_head_is_window_plus_features(window):
    plain, net = compiled(0), compiled(window)
    feats = net.node("layer0.attn.features")
    for kind in ("hebbian", "astrocyte"):
        assert counted(net, f"layer0.attn.{kind}").m == feats.m + window  # 2m features + W slots per head
    chip = load_chip("loihi2")
    extra = resources(net, chip)["by_kind"]["astrocyte"]["neurons"] - resources(plain, chip)["by_kind"]["astrocyte"][
        "neurons"]
    circuits = net.of_kind("features")
    assert extra == sum(op.n_heads * window for op in circuits)  # one process per slot and head


@pytest.mark.parametrize("granularity", ["fused", "fine"])
@pytest.mark.parametrize("window", [3, 4, 40])
def test_replayed_streams_add_delay_line_values_and_no_steps(window, granularity):
    T = 12
    plain, net = lava_steps(compiled(0), T, 2, granularity), lava_steps(compiled(window), T, 2, granularity)
    assert {k: v for k, v in net.items() if k != "delay_values"} == {k: v for k, v in plain.items()
                                                                     if k != "delay_values"}
    D = max(0, T - (window - 1) // 2)  # token j replays D steps after its write
    g, widths = compiled(window), 0
    for op in g.of_kind("features"):
        hebbian = op.name.replace("features", "hebbian")
        widths += g.node(g.inputs_of(op.name)["key"]).out_size() + g.node(g.inputs_of(hebbian)["teacher"]).out_size()
    if granularity == "fused":  # one process: no hop to wait for, the replays are the only new delay lines
        assert net["delay_values"] - plain["delay_values"] == D * widths
    else:  # fine: the circuit's wider messages also wait in the lines aligning their consumers
        assert net["delay_values"] - plain["delay_values"] > D * widths
    queries = sum(T * g.node(g.inputs_of(op.name)["query"]).out_size() for op in g.of_kind("features"))
    assert plain["delay_values"] >= queries  # the queries of every bidirectional circuit wait T steps
