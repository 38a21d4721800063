"""Chip descriptions, per-kind resource counts and the energy/latency estimate against hand counts."""

import json

import numpy as np
import pytest

from compiler.process import ProcessGraph
from compiler.process.nodes import PROCESS_KINDS, InputEncoderNode, OutputDecoder, Population, Synapses
from hardware_sim.chip import COUNTERS, ChipError, available, load_chip, resources


def mlp(widths=(100, 200, 50), bias=False, chip_weight=True):
    """encoder -> (synapses -> population)* -> decoder with the given widths."""
    net = ProcessGraph("mlp")
    prev = net.add(InputEncoderNode("in", size=widths[0]))
    rng = np.random.default_rng(0)
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        w = rng.normal(size=(b, a)) if chip_weight else None
        syn = net.add(Synapses(f"syn{i}", pre_size=a, post_size=b, weight=w,
                               bias=rng.normal(size=b) if bias else None), pre=prev)
        prev = net.add(Population(f"pop{i}", size=b), in0=syn)
    net.add(OutputDecoder("out", size=widths[-1]), x=prev)
    net.validate()
    return net


def test_bundled_chips_load_and_cite_sources():
    assert {"loihi1", "loihi2"} <= set(available())
    l1, l2 = load_chip("loihi1"), load_chip("loihi2")
    assert (l1.cores_per_chip, l1.neurons_per_core, l1.synaptic_memory_bytes_per_core) == (128, 1024, 131072)
    assert (l2.cores_per_chip, l2.neurons_per_core, l2.synaptic_memory_bytes_per_core) == (128, 8192, 131072)
    assert l1.costs["synop_energy_j"] == pytest.approx(23.6e-12)
    assert "Davies" in l1.sources["synop_energy_j, synop_time_s"]
    assert "ESTIMATE" in l2.sources["all costs"]


def test_override_file_and_validation(tmp_path):
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"neurons_per_core": 4096, "costs": {"synop_energy_j": 1e-12}}))
    chip = load_chip("loihi2", f)
    assert chip.neurons_per_core == 4096 and chip.costs["synop_energy_j"] == 1e-12
    assert chip.costs["neuron_update_energy_j"] == load_chip("loihi2").costs["neuron_update_energy_j"]
    assert "user override" in chip.sources["neurons_per_core"]
    with pytest.raises(ChipError, match="unknown cost"):
        load_chip("loihi2", {"costs": {"synop_energj": 1.0}})
    with pytest.raises(ChipError, match="neurons_per_core must be a positive integer"):
        load_chip("loihi2", {"neurons_per_core": -3})
    with pytest.raises(ChipError, match="unknown chip 'loihi9'"):
        load_chip("loihi9")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(ChipError, match="not valid JSON"):
        load_chip(bad)
    with pytest.raises(ChipError, match="missing"):
        load_chip({"format": "tripartite-chip", "name": "x", "cores_per_chip": 1})


def test_every_process_kind_has_a_resource_count():
    assert set(PROCESS_KINDS) <= set(COUNTERS)


def test_resources_equal_hand_counts():
    net = mlp((100, 200, 50), bias=True)
    r = resources(net, "loihi2")
    assert r["neurons"] == 250
    assert r["synapses"] == 100 * 200 + 200 * 50
    assert r["bytes"] == 30000  # 8-bit weights
    assert r["state_bytes"] == 250 * 3 + 250 * 3  # 24-bit state and 24-bit biases
    assert r["synops_per_token"] == 30000
    assert r["messages_per_token"] == 100 + 200 + 50
    assert r["neuron_updates_per_token"] == 2 * 250
    assert (r["cores"], r["chips"]) == (1, 1)
    c = load_chip("loihi2").costs
    want = 30000 * c["synop_energy_j"] + 500 * c["neuron_update_energy_j"] + 350 * c["spike_within_tile_energy_j"]
    assert r["energy_per_token_j"] == pytest.approx(want)
    step = 30000 / 2 * c["synop_time_s"] + 250 * c["neuron_update_time_s"] + c["barrier_time_s"]
    assert r["latency_per_token_s"] == pytest.approx(2 * 2 * step)  # 2 phases x depth 2
    for key in ("neurons", "synapses", "bytes", "cores", "chips", "synops_per_token", "energy_per_token_j",
                "latency_per_token_s"):
        assert key in r
    json.dumps(r)


def test_one_to_one_synapses_count_one_per_neuron():
    r = resources(mlp((64, 64), chip_weight=False), "loihi2")
    assert r["synapses"] == 64 and r["synops_per_token"] == 64


def test_known_size_core_counts():
    # 1000x1000 synapse group: 131 rows of 1000 bytes per 128 KB core -> 8 cores; the population
    # of 1000 neurons fits beside the last 83 rows.
    net = mlp((1000, 1000))
    assert resources(net, "loihi2")["cores"] == 8
    assert resources(net, "loihi1")["cores"] == 8
    # 3000 neurons without synapses: ceil(3000 / 1024) cores on Loihi 1, one on Loihi 2
    big = mlp((3000, 3000), chip_weight=False)
    assert resources(big, "loihi1")["cores"] == 3  # one-to-one rows live beside their neurons
    assert resources(big, "loihi2")["cores"] == 1


def test_spanning_chips():
    # layer 1: 7 cores x 131 neurons (each with a 1000-byte row) + 83 on core 7; layer 2: 48 more on
    # core 7 (its free 48072 bytes), 7 x 131 on cores 8-14, the last 35 on core 15
    net = mlp((1000, 1000, 1000))
    r = resources(net, "loihi2", {"cores_per_chip": 3})
    assert r["cores"] == 16 and r["chips"] == 6
    assert r["energy_breakdown_j"]["chip_crossings"] > 0
