"""compile --rounding / --outlier-ratio / --split-qk from the command line; bad values are one-line errors."""

import pytest

from compiler.models import random_llama
from compiler.process import ProcessGraph
from runtime.cli import main


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("precision") / "llama.tpg"
    random_llama().save(path)
    return path


def test_compile_with_weight_options(source, tmp_path):
    out = tmp_path / "n.tpn"
    code = main(["compile", str(source), "-o", str(out), "--precision", "loihi2", "--max-tokens", "8",
                 "--rounding", "compensated", "--outlier-ratio", "4", "--split-qk"])
    assert code == 0
    net = ProcessGraph.load(out)
    q = net.meta["quantization"]
    assert (q["rounding"], q["outlier_ratio"], q["split_qk"]) == ("compensated", 4.0, True)
    assert net.node("layer0.attn.q.synapses").quant["rounding"] == "compensated"
    assert "layer1.attn.k.synapses.residual" in net


@pytest.mark.parametrize("args, needle", [
    (["--rounding", "stochastic"], "invalid choice: 'stochastic'"),
    (["--outlier-ratio", "-2"], "--outlier-ratio must be >= 0"),
])
def test_bad_weight_options(source, tmp_path, capsys, args, needle):
    try:
        code = main(["compile", str(source), "-o", str(tmp_path / "n.tpn"), "--precision", "loihi2", *args])
    except SystemExit as exc:  # argparse refuses a value outside the choices itself
        code = exc.code
    assert code == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert needle in err[-1]
