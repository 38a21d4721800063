"""Figures of a run or a verification (matplotlib, Agg), and the HTML page that links them.

Probes come from the backend (``"<node>/<var>"``, token axis second): astrocyte ``calcium``
(B, T, H, m, the calcium each read sees), ``soma_sum`` z and ``soma_offset`` s (B, T, H), Hebbian
``weights`` (B, G, v_head_dim, m, after all writes) and feature ``activity`` (B, T, H, m: the slot
responses ``exp(scale q_t.k_j - s_t)`` of exact circuits).  Figures show sequence 0 and head 0 of
the first attention circuit unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ALL_PROBES = ("calcium", "soma", "weights", "activity")


def circuits(net) -> list[str]:
    """Attention circuits of ``net`` (attention-graph names), in compile order."""
    return list((net.meta.get("per_layer") or {}).keys())


def save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def float_attention(graph, circuit: str, values: dict, mask: np.ndarray, seq: int = 0):
    """Float attention weights (H, T, T) and logits (H, T, T) of ``circuit`` for sequence ``seq``."""
    op = graph.node(circuit)
    ins = graph.inputs_of(circuit)
    q, k = values[ins["q"]][seq:seq + 1], values[ins["k"]][seq:seq + 1]
    qh, kh, _ = op.split_heads(q, k, np.zeros(k.shape[:2] + (op.n_kv_heads * op.v_head_dim,)))
    logits = (qh @ kh.transpose(0, 1, 3, 2)) * op.scale
    from compiler.attention.nodes import EvalContext

    ctx = EvalContext(dtype=np.float64, mask=mask[seq:seq + 1], positions=np.arange(mask.shape[1])[None])
    visible = op.visibility(ctx, mask.shape[1])
    logits = np.where(visible, logits, -np.inf)[0]
    peak = np.max(logits, axis=-1, keepdims=True)
    weights = np.exp(logits - np.where(np.isfinite(peak), peak, 0))
    return weights / np.maximum(weights.sum(-1, keepdims=True), 1e-300), logits


def circuit_attention(probes: dict, circuit: str, seq: int = 0):
    """Circuit attention weights (H, T, m) ``a_tj = c_j f_j(q_t) / z_t``, when the probes allow it."""
    c = probes.get(f"{circuit}.astrocyte/calcium")
    f = probes.get(f"{circuit}.features/activity")
    z = probes.get(f"{circuit}.astrocyte/soma_sum")
    if c is None or f is None or z is None:
        return None
    r = np.asarray(c[seq], np.float64) * np.asarray(f[seq], np.float64)      # (T, H, m)
    return (r / np.where(z[seq] != 0, z[seq], 1)[..., None]).transpose(1, 0, 2)


# ---- figures -----------------------------------------------------------------------------------------
def calcium_stream(c_read: np.ndarray, mode: str, lowering: str) -> tuple[np.ndarray, int]:
    """Calcium (phases, m) over the whole phase schedule and the number of write phases shown.

    Causal schedules interleave write t / read t, so the calcium each read sees is the trajectory.
    Bidirectional ones write every token first: for exact slots the write phase of token t gives
    process t its calcium (``c_j(t) = c_j [j <= t]``), then every read sees the final calcium.
    """
    if mode == "causal" or lowering != "exact":
        return c_read, 0
    T, m = c_read.shape
    final = c_read[-1]
    written = np.arange(m)[None, :] <= np.arange(T)[:, None]
    return np.vstack([np.where(written, final[None, :], 0.0), c_read]), T


def plot_calcium(probes, circuit, path, seq=0, head=0, mode="bidirectional", lowering="exact"):
    c = probes.get(f"{circuit}.astrocyte/calcium")
    if c is None:
        return None
    c_read = np.asarray(c[seq, :, head], np.float64)                       # (T, m)
    stream, writes = calcium_stream(c_read, mode, lowering)
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    im = a.imshow(stream.T, aspect="auto", origin="lower", cmap="viridis", interpolation="nearest")
    label = "phase (write 0..T-1, then read 0..T-1)" if writes else "token (write t, then read t)"
    a.set_xlabel(label)
    a.set_ylabel("astrocyte process j")
    a.set_title(f"{circuit} head {head}: process calcium c_j")
    fig.colorbar(im, ax=a)
    b.plot(stream.sum(axis=1), marker="o", markersize=3)
    if writes:
        for ax in (a, b):
            ax.axvline(writes - 0.5, color="k", linestyle="--", linewidth=1)
        b.text(writes / 2, stream.sum(axis=1).max() * 0.5, "write phases", ha="center")
        b.text(writes * 1.5, stream.sum(axis=1).max() * 0.5, "read phases", ha="center")
    b.set_xlabel(label)
    b.set_ylabel("sum_j c_j")
    b.set_title("total calcium over the phase schedule")
    return save(fig, path)


def plot_hebbian(probes, circuit, path, seq=0, head=0, lowering="exact"):
    w = probes.get(f"{circuit}.hebbian/weights")
    if w is None:
        return None
    w = np.asarray(w[seq, head], np.float64)                               # (v_head_dim, m)
    col = np.linalg.norm(w, axis=0)
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    lim = np.abs(w).max() or 1.0
    im = a.imshow(w, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    a.set_xlabel("feature neuron j (presynaptic)")
    a.set_ylabel("output neuron (postsynaptic)")
    a.set_title(f"{circuit} head {head}: Hebbian weights H after all writes")
    fig.colorbar(im, ax=a)
    if lowering == "exact":
        b.plot(np.sqrt(np.cumsum(col**2)), marker="o")
        b.set_xlabel("write phase t (slot t learns v_t)")
        b.set_ylabel("||H||_F after write t")
        b.set_title("Hebbian weight growth")
    else:
        b.bar(np.arange(col.size), col)
        b.set_xlabel("feature neuron j")
        b.set_ylabel("|H_j|")
        b.set_title("weight norm per feature synapse")
    return save(fig, path)


def plot_soma(probes, circuit, path, graph=None, values=None, mask=None, seq=0):
    z = probes.get(f"{circuit}.astrocyte/soma_sum")
    if z is None:
        return None
    z = np.asarray(z[seq], np.float64)                                      # (T, H)
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if graph is not None and values is not None:
        _, logits = float_attention(graph, circuit, values, mask, seq)     # (H, T, T)
        s = probes.get(f"{circuit}.astrocyte/soma_offset")
        shift = np.asarray(s[seq], np.float64).T[..., None] if s is not None else 0.0
        denom = np.exp(logits - shift).sum(axis=-1).T                        # (T, H)
        keep = mask[seq]
        ax.scatter(denom[keep].ravel(), z[keep].ravel(), s=12, alpha=0.7)
        lo, hi = denom[keep].min(), denom[keep].max()
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="z = denominator")
        ax.set_xlabel("softmax denominator sum_j exp(q.k_j/sqrt d - s)")
        ax.legend()
    else:
        ax.plot(z, marker=".")
        ax.set_xlabel("token")
    ax.set_ylabel("astrocyte soma sum z = sum_j c_j f_j(q)")
    ax.set_title(f"{circuit}: soma sum vs softmax denominator")
    return save(fig, path)


def plot_attention_maps(probes, circuit, path, graph=None, values=None, mask=None, seq=0, head=0):
    circ = circuit_attention(probes, circuit, seq)
    ref = float_attention(graph, circuit, values, mask, seq)[0] if graph is not None and values is not None else None
    panels = [(m, t) for m, t in ((circ, "circuit: c_j f_j(q_t) / z_t"), (ref, "float softmax")) if m is not None]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.2), squeeze=False)
    T = mask.shape[1] if mask is not None else panels[0][0].shape[1]
    for ax, (m, title) in zip(axes[0], panels):
        im = ax.imshow(m[head][:, :T], cmap="magma", vmin=0)
        ax.set_xlabel("key token j (slot)")
        ax.set_ylabel("query token t")
        ax.set_title(f"{circuit} head {head}: {title}")
        fig.colorbar(im, ax=ax)
    return save(fig, path)


def plot_layer_errors(report, path):
    rows = [*report.layers, report.output]
    names = [r.name if r is not report.output else f"output ({r.name})" for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.45 * len(rows) + 2))
    y = np.arange(len(rows))
    a.barh(y, [max(r.rel_l2_err, 1e-18) for r in rows])
    a.set_xscale("log")
    a.set_yticks(y, names)
    a.invert_yaxis()
    a.set_xlabel("relative L2 error vs float")
    a.set_title(f"{report.backend} ({report.precision}, {report.lowering})")
    b.barh(y, [1 - r.cosine_mean for r in rows], color="tab:orange")
    b.set_yticks(y, [""] * len(rows))
    b.invert_yaxis()
    b.set_xlabel("1 - mean cosine")
    b.set_title("per-token direction error")
    return save(fig, path)


def favor_sweep(net, graph, batch, ms=(16, 64, 256, 1024), sequences=8) -> dict[int, float]:
    """Output relative L2 error of the favor lowering vs m on the first ``sequences`` inputs (golden, float64)."""
    from compiler.api import compile as compile_model
    from hardware_sim.golden import simulate
    from runtime.reference import run_reference

    x, mask = batch.x[:sequences], batch.mask[:sequences]
    ref = run_reference(graph, x, mask).outputs
    errors = {}
    for m in ms:
        favor = compile_model(graph, lowering="favor", features=m, seed=int(net.meta.get("seed", 0)),
                              orthogonal=bool(net.meta.get("orthogonal", False)),
                              max_tokens=int(net.meta.get("max_tokens", x.shape[1])))
        got = simulate(favor, x, mask).outputs
        role = "logits" if "logits" in got else next(iter(got))
        a, b = got[role][mask], ref[role][mask]
        errors[m] = float(np.linalg.norm(a - b) / np.linalg.norm(b))
    return errors


def plot_favor(errors: dict[int, float], path):
    ms = np.array(sorted(errors))
    err = np.array([errors[m] for m in ms])
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.loglog(ms, err, marker="o", label="measured")
    ax.loglog(ms, err[0] * np.sqrt(ms[0] / ms), "k--", lw=1, label="~ 1/sqrt(m)")
    ax.set_xlabel("feature neurons per head m")
    ax.set_ylabel("output relative L2 error")
    ax.set_title("favor lowering: error vs m")
    ax.legend()
    return save(fig, path)


# ---- entry points ------------------------------------------------------------------------------------
def circuit_figures(net, probes, out: Path, graph=None, values=None, mask=None) -> list[tuple[str, Path]]:
    figures = []
    names = circuits(net)
    if not names:
        return figures
    c = names[0]
    lowering = (net.meta.get("per_layer") or {}).get(c, net.meta.get("lowering", "exact"))
    schedules = [op for op in net.of_kind("schedule") if op.name.startswith(c)]
    mode = schedules[0].mode if schedules else "bidirectional"
    for title, path in (
        ("Calcium of the astrocyte processes over the token stream",
         plot_calcium(probes, c, out / "calcium.png", mode=mode, lowering=lowering)),
        ("Hebbian weight growth", plot_hebbian(probes, c, out / "hebbian.png", lowering=lowering)),
        ("Soma sum against the softmax denominator",
         plot_soma(probes, c, out / "soma.png", graph, values, mask)),
        ("Circuit vs float attention maps",
         plot_attention_maps(probes, c, out / "attention_maps.png", graph, values, mask)),
    ):
        if path is not None:
            figures.append((title, path))
    return figures


def verify_plots(net, batch, report, out: Path, resources: dict | None = None, title: str = "tripartite verify",
                 favor_ms=(16, 64, 256, 1024), probes_from=None) -> Path:
    """Figures of a verification and ``index.html`` in ``out``; returns the HTML path.

    ``probes_from``: another report (a golden run of the same network and inputs) whose probes and
    per-layer errors to draw when ``report``'s backend records none; captions name that backend.
    """
    from runtime.html_report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    source = probes_from or report
    arrays = source.arrays
    ref, result, graph = arrays.get("reference"), arrays.get("result"), arrays.get("graph")
    probes = result.probes if result is not None else {}
    values = ref.values if ref is not None else None
    figures = circuit_figures(net, probes, out, graph, values, batch.mask)
    if source is not report:
        figures = [(f"{caption} ({source.backend} simulator)", path) for caption, path in figures]
    figures.append(("Error per layer" + ("" if source is report else f" ({source.backend} simulator)"),
                    plot_layer_errors(source, out / "layer_errors.png")))
    sweep = None
    if "favor" in report.lowering and graph is not None:
        sweep = favor_sweep(net, graph, batch, favor_ms)
        figures.append(("Favor lowering: error vs number of feature neurons m", plot_favor(sweep, out / "favor_m.png")))
    return write_report(out / "index.html", title, report=report, figures=figures, resources=resources,
                        favor=sweep, layers_from=source)


def run_plots(net, batch, result, out: Path) -> Path:
    """Figures of a run (no float reference): circuit probes of the first sequence; ``index.html``."""
    from runtime.html_report import write_report
    from runtime.inputs import Batch
    from runtime.run import run

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    probes = result.probes
    names = circuits(net)
    if names and f"{names[0]}.astrocyte/soma_sum" not in probes:
        one = Batch(x=batch.x[:1], mask=batch.mask[:1])
        probes = run(net, one, backend=result.backend, probes=ALL_PROBES).probes
    figures = circuit_figures(net, probes, out, mask=batch.mask)
    return write_report(out / "index.html", "tripartite run", run=result, figures=figures)
