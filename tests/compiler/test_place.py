"""Placement pass: expected core counts, circuits kept whole, clear failures."""

import numpy as np
import pytest

from compiler.api import compile
from compiler.errors import PassError, TripartiteError
from compiler.models import random_bert
from compiler.passes.base import CompileOptions, Pass, PassManager
from compiler.passes.place import Place
from compiler.process import ProcessGraph
from compiler.process.nodes import InputEncoderNode, OutputDecoder, Population, Synapses
from hardware_sim.chip import load_chip


def mlp(widths):
    net = ProcessGraph("mlp")
    prev = net.add(InputEncoderNode("in", size=widths[0]))
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        syn = net.add(Synapses(f"syn{i}", pre_size=a, post_size=b, weight=np.ones((b, a))), pre=prev)
        prev = net.add(Population(f"pop{i}", size=b), in0=syn)
    net.add(OutputDecoder("out", size=widths[-1]), x=prev)
    return net


class Lowered(Pass):
    name, ensures = "lowered-already", ("lowered",)

    def run(self, graph, options):
        return graph


def place(net, chip="loihi2"):
    return Place().run(net, CompileOptions(chip=chip))


def test_known_size_gets_expected_cores_and_records_placement():
    net = place(mlp((1000, 1000)))
    p = net.meta["placement"]
    assert p["cores"] == 8 and p["chips"] == 1 and p["chip"] == "loihi2"
    # synapse rows sit on the cores of their post-synaptic neurons
    assert p["nodes"]["syn0"] == p["nodes"]["pop0"]
    assert [c for c, a, b in p["nodes"]["pop0"]] == list(range(8))
    assert sum(b - a for _, a, b in p["nodes"]["pop0"]) == 1000
    cap = load_chip("loihi2")
    for core in p["cores_used"]:
        assert core["neurons"] <= cap.neurons_per_core and core["bytes"] <= cap.synaptic_memory_bytes_per_core


def test_small_network_on_one_core_has_no_cross_core_traffic_between_layers():
    p = place(mlp((64, 64, 64)))
    assert p.meta["placement"]["cores"] == 1
    assert p.meta["placement"]["tile_hops_per_token"] == 0


def test_group_that_cannot_fit_any_core_fails_clearly():
    net = mlp((200_000, 2))
    with pytest.raises(TripartiteError) as info:
        place(net)
    msg = str(info.value)
    assert "'pop0'" in msg and "syn0" in msg and "200000 bytes" in msg and "131072" in msg and "split" in msg
    assert "\n" not in msg
    with pytest.raises(PassError, match="pass 'place' failed.*200000 bytes"):
        PassManager([Lowered(), Place()]).run(net, CompileOptions(chip="loihi2"))


def test_attention_circuits_stay_together():
    net = compile(random_bert(), lowering="exact")
    p = place(net, "loihi1").meta["placement"]
    circuits = {}
    for op in net.nodes():
        if op.kind in ("features", "hebbian_synapses", "astrocyte"):
            circuits.setdefault(op.circuit, []).append(p["nodes"][op.name])
    assert circuits
    for parts in circuits.values():
        assert all(x == parts[0] for x in parts)  # same cores, same head ranges


def test_oversized_head_names_the_circuit_and_the_fix():
    net = compile(random_bert(), lowering="favor", features=2048)
    with pytest.raises(TripartiteError, match=r"attention circuit .*one head.* needs \d+ neurons .* 1024.*--features"):
        place(net, "loihi1")
