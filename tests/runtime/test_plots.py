"""Figures and the HTML report: files written, links resolve, circuit quantities match the float model."""

import re

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models.digits_vit import digits_split, digits_vit
from runtime import run, verify
from runtime.inputs import Batch
from runtime.plots import circuit_attention, float_attention, run_plots, verify_plots


@pytest.fixture(scope="module")
def digits():
    graph = digits_vit()
    images = digits_split()[2][:6]
    x = graph.encoder.encode_patches(images)
    mask = np.ones(x.shape[:2], bool)
    mask[1, 12:] = False
    return graph, Batch(x=x, mask=mask)


def linked_files(html: str) -> set[str]:
    return set(re.findall(r"(?:href|src)='([^'#]+)'", html))


def test_verify_plots_write_linked_figures(digits, tmp_path):
    graph, batch = digits
    net = compile_model(graph, max_tokens=16)
    report = verify(net, graph, batch)
    page = verify_plots(net, batch, report, tmp_path)
    html = page.read_text()
    links = linked_files(html)
    assert {"calcium.png", "hebbian.png", "soma.png", "attention_maps.png", "layer_errors.png"} <= links
    for name in links:
        assert (tmp_path / name).stat().st_size > 1000
    assert "layer1.mlp.residual" in html and "passed" in html


def test_circuit_attention_is_softmax_attention(digits):
    graph, batch = digits
    net = compile_model(graph, max_tokens=16)
    report = verify(net, graph, batch)
    probes, values = report.arrays["result"].probes, report.arrays["reference"].values
    for seq in (0, 1):
        circuit = circuit_attention(probes, "layer1.attn", seq)
        ref, _ = float_attention(graph, "layer1.attn", values, batch.mask, seq)
        np.testing.assert_allclose(circuit, ref, atol=1e-12)
    assert np.all(circuit_attention(probes, "layer0.attn", 1)[:, :, 12:] == 0)


def test_favor_report_has_error_vs_m(digits, tmp_path):
    graph, batch = digits
    net = compile_model(graph, lowering="favor", features=32, max_tokens=16)
    report = verify(net, graph, batch)
    page = verify_plots(net, batch, report, tmp_path, favor_ms=(16, 256))
    assert "favor_m.png" in linked_files(page.read_text())
    assert (tmp_path / "favor_m.png").is_file()


def test_run_plots_probe_on_demand(digits, tmp_path):
    graph, batch = digits
    net = compile_model(graph, max_tokens=16)
    result = run(net, batch)
    page = run_plots(net, batch, result, tmp_path / "run")
    links = linked_files(page.read_text())
    assert {"calcium.png", "hebbian.png", "soma.png", "attention_maps.png"} <= links
    assert all((tmp_path / "run" / name).is_file() for name in links)


def test_calcium_stream_shows_the_write_phases_of_bidirectional_slots():
    from runtime.plots import calcium_stream

    final = np.ones((4, 4))  # every read of a bidirectional exact circuit sees all four slots written
    stream, writes = calcium_stream(final, "bidirectional", "exact")
    assert writes == 4 and stream.shape == (8, 4)
    np.testing.assert_array_equal(stream[:4].sum(axis=1), [1, 2, 3, 4])  # slot t gains calcium at write t
    np.testing.assert_array_equal(stream[4:], final)
    causal = np.tril(np.ones((4, 4)))
    same, none = calcium_stream(causal, "causal", "exact")
    assert none == 0 and same is causal
