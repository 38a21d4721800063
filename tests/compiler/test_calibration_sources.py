"""Where the quantize pass takes its calibration from: bundled sentences, text files, arrays."""

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.frontends.source import load_source, minilm_dir
from compiler.passes.quantize import calibration_inputs
from hardware_sim.golden import simulate
from runtime.cli import main
from runtime.reference import mean_pool, run_reference
from runtime.text import tokenize

SENTENCES = ["The river froze early this winter.", "Can you send me the report by noon?",
             "Glial cells outnumber neurons in some brain regions.", "Score: 3 to 1 after extra time."]


@pytest.fixture(scope="module")
def minilm():
    return load_source(minilm_dir())


def test_models_with_a_tokenizer_calibrate_on_the_bundled_sentences(minilm):
    net = compile_model(minilm, max_tokens=32)
    x, mask, source = calibration_inputs(net, None, max_tokens=32)
    assert source == "default: bundled calibration sentences"
    assert x.shape[0] >= 20 and mask.sum(axis=1).min() >= 2 and mask[:, 0].all()


def test_default_calibration_keeps_minilm_on_the_float_model(minilm):
    net = compile_model(minilm, precision="loihi2", max_tokens=64)
    ids, mask, types = tokenize(minilm.encoder, SENTENCES)
    x = minilm.encoder.encode(ids, types)
    result = simulate(net, x, mask, precision="loihi2")
    assert sum(result.saturations.values()) == 0
    a = mean_pool(result.outputs["hidden"].astype(np.float64), mask)
    b = mean_pool(run_reference(minilm, x, mask).outputs["hidden"], mask)
    assert (a * b).sum(axis=1).min() > 0.99


def test_text_file_calibration_from_the_command_line(tmp_path, capsys):
    texts = tmp_path / "calibration.txt"
    texts.write_text("\n".join(SENTENCES) + "\n")
    out = tmp_path / "minilm.tpn"
    assert main(["compile", str(minilm_dir()), "-o", str(out), "--precision", "loihi2", "--max-tokens", "32",
                 "--calibrate", str(texts)]) == 0
    assert out.stat().st_size > 0


def test_calibration_file_errors_are_one_line(tmp_path, capsys):
    code = main(["compile", str(minilm_dir()), "-o", str(tmp_path / "x.tpn"), "--precision", "loihi2",
                 "--calibrate", str(tmp_path / "missing.txt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "missing.txt" in err and "\n" not in err
