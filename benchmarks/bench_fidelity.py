"""Fidelity of all-MiniLM-L6-v2 at loihi2 precision: exact lowering, integer golden simulator vs float.

Sentences: tests/fixtures/sentences200.txt (200 varied sentences).  The quantize pass is calibrated
on CALIBRATION_TEXTS below (disjoint from the test sentences).  Measures, per sentence, the cosine
of the mean-pooled embedding with the float64 reference (targets: mean >= 0.995, min >= 0.98), the
saturation counts, and a per-layer table at the attention-graph layer outputs
(``net.meta["layer_outputs"]``):

- ``loihi2``: relative L2 error of the integer simulator vs the float reference;
- ``weights``: the same for the float simulator running the 8-bit (dequantised) weights only;
- ``arith``: integer simulator vs that weights-only run -- what the 24-bit state, the exp / 1/z /
  1/sqrt tables and the activation tables add on top of the weight rounding.

Prints the table and writes benchmarks/results/fidelity.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.frontends.source import load_source, minilm_dir  # noqa: E402
from hardware_sim.fixed_point import dequantize_weights  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from hardware_sim.golden.fixed_neurons import mantissas  # noqa: E402
from runtime.reference import mean_pool, run_reference  # noqa: E402
from runtime.text import read_text_file, tokenize  # noqa: E402

SENTENCES = ROOT / "tests/fixtures/sentences200.txt"
RESULT = ROOT / "benchmarks/results/fidelity.json"
TARGET_MEAN, TARGET_MIN = 0.995, 0.98

CALIBRATION_TEXTS = [
    "A quiet street at dawn, before the shops open.",
    "The quarterly report shows revenue growth in every region except the south.",
    "Where did I leave my glasses?",
    "Enzymes speed up chemical reactions without being consumed.",
    "The striker missed a penalty in the second half.",
    "Please call me back when you get this message.",
    "Heavy snowfall closed schools across the valley for three days.",
    "The software crashes whenever I open a large spreadsheet.",
    "Medieval monks copied books by hand in candlelit scriptoria.",
    "Yes.",
    "The council voted to extend the cycle path to the harbour.",
    "Our cat refuses to eat anything except one brand of food.",
    "Interest rates affect mortgages, savings and business investment.",
    "The violinist tuned her instrument backstage while the audience took their seats.",
    "How long does it take to boil an egg?",
    "The expedition reached the summit after six weeks on the mountain.",
    "Neurons communicate through electrical and chemical signals at synapses.",
    "I would like a table for four at eight o'clock, please.",
    "Tides are caused mainly by the gravitational pull of the moon.",
    "The company recalled thousands of cars because of a faulty brake sensor.",
    "After the long meeting, everyone was too tired to discuss the budget, so the vote was postponed.",
    "The garden needs watering twice a week in summer.",
    "Historians still debate the causes of the empire's decline.",
    "Thanks!",
]


def layer_order(name: str) -> tuple:
    m = re.match(r"layer(\d+)\.(\w+)", name)
    return (int(m.group(1)), m.group(2) != "attn") if m else (-1, False)


def encode(graph, net, texts):
    ids, mask, types = tokenize(graph, list(texts))
    return net.encoder.encode(ids, types), mask


def compile_minilm(calibration_texts=CALIBRATION_TEXTS):
    """The MiniLM attention graph and its exact loihi2 compilation calibrated on ``calibration_texts``."""
    graph = load_source(str(minilm_dir()))
    float_net = compiler.compile(graph, lowering="exact", precision="float64")
    x, mask = encode(graph, float_net, calibration_texts)
    return graph, compiler.compile(graph, lowering="exact", precision="loihi2", calibrate=(x, mask))


def weights_only(net):
    """A float copy of ``net`` whose synapses carry the 8-bit weights the loihi2 arithmetic uses."""
    twin = copy.deepcopy(net)
    twin.meta["precision"] = "float64"
    for op in twin.of_kind("synapses"):
        if op.weight is not None:
            e = np.asarray(op.quant.get("w_row_exp", op.quant["w_exp"]))
            op.weight = dequantize_weights(mantissas(op.weight, e), e, axis=0 if e.ndim else None)
    return twin


def rel(a, b, mask) -> float:
    return float(np.linalg.norm((a - b)[mask]) / np.linalg.norm(b[mask]))


def fidelity(graph, net, texts, batch: int = 25) -> dict:
    """Embedding cosines, saturations and the per-layer error table over ``texts``."""
    layers = sorted(net.meta["layer_outputs"], key=layer_order)
    nodes = [net.meta["layer_outputs"][s] for s in layers]
    twin = weights_only(net)
    cos = np.empty(len(texts))
    sats: dict[str, int] = {}
    sums = {s: np.zeros(3) for s in layers}
    order = np.argsort([len(t) for t in texts], kind="stable")
    for start in range(0, len(texts), batch):
        idx = order[start:start + batch]
        x, mask = encode(graph, net, [texts[i] for i in idx])
        out = simulate(net, x, mask, precision="loihi2", keep=nodes)
        ref = run_reference(graph, x, mask, keep=layers)
        wq = simulate(twin, x, mask, keep=nodes)
        e_fixed = mean_pool(out.outputs["hidden"], mask)
        e_ref = mean_pool(ref.outputs["hidden"], mask)
        cos[idx] = (e_fixed * e_ref).sum(axis=-1)
        for k, v in out.saturations.items():
            sats[k] = sats.get(k, 0) + v
        for s, n in zip(layers, nodes):
            sums[s] += len(idx) * np.array([rel(out.values[n], ref.values[s], mask),
                                            rel(wq.values[n], ref.values[s], mask),
                                            rel(out.values[n], wq.values[n], mask)])
    table = [{"layer": s, "node": n, "loihi2": sums[s][0] / len(texts), "weights": sums[s][1] / len(texts),
              "arith": sums[s][2] / len(texts)} for s, n in zip(layers, nodes)]
    return {"sentences": len(texts), "cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
            "cosines": cos.tolist(), "saturations": sats, "layers": table}


def print_report(res: dict) -> None:
    print(f"all-MiniLM-L6-v2, exact lowering, loihi2, {res['sentences']} sentences")
    print(f"{'layer output':<18}{'loihi2 rel err':>16}{'8-bit weights':>16}{'integer arith':>16}")
    for row in res["layers"]:
        print(f"{row['layer']:<18}{row['loihi2']:>16.2e}{row['weights']:>16.2e}{row['arith']:>16.2e}")
    ok = res["cosine_mean"] >= TARGET_MEAN and res["cosine_min"] >= TARGET_MIN
    print(f"embedding cosine vs float: mean {res['cosine_mean']:.5f} (target >= {TARGET_MEAN}), "
          f"min {res['cosine_min']:.5f} (target >= {TARGET_MIN}) -> {'met' if ok else 'MISSED'}")
    print(f"saturations: {res['saturations'] or 'none'}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="use only the first N sentences")
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results/fidelity.json")
    args = ap.parse_args(argv)
    texts = read_text_file(SENTENCES)[: args.limit]
    start = time.perf_counter()
    graph, net = compile_minilm()
    res = fidelity(graph, net, texts)
    res["seconds"] = time.perf_counter() - start
    res["calibration"] = net.meta["quantization"]
    print_report(res)
    print(f"{res['seconds']:.1f} s")
    if not args.no_write:
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(res, indent=1) + "\n")
    return 0 if res["cosine_mean"] >= TARGET_MEAN and res["cosine_min"] >= TARGET_MIN else 1


if __name__ == "__main__":
    sys.exit(main())
