"""One self-contained HTML page (no scripts, no external styles) with the tables and the figures."""

from __future__ import annotations

import html
from pathlib import Path

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:.3em .7em;text-align:right}
td:first-child,th:first-child{text-align:left}.pass{color:#070}.fail{color:#b00}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}"""


def fmt(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table(header: list[str], rows: list[list]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{fmt(v)}</td>" for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def verify_section(report) -> str:
    d = report.to_dict()
    verdict = '<span class="pass">passed</span>' if d["passed"] else '<span class="fail">FAILED</span>'
    parts = [f"<h2>Verification: {verdict}</h2>",
             table(["field", "value"], [[k, d[k]] for k in ("backend", "precision", "lowering", "source", "task",
                                                             "sequences", "tokens", "saturations")])]
    rows = [[r["name"], r["max_abs_err"], r["rel_l2_err"], r["cosine"], r["cosine_min"]] for r in d["layers"]]
    o = d["output"]
    rows.append([f"output ({o['role']})", o["max_abs_err"], o["rel_l2_err"], o["cosine_mean"], o["cosine_min"]])
    parts += ["<h3>Error against the float model</h3>",
              table(["compared", "max abs err", "rel L2 err", "cosine mean", "cosine min"], rows)]
    if d["agreement"]:
        rows = [[k, v] for k, v in d["agreement"].items()]
        parts += ["<h3>Task-level agreement</h3>", table(["quantity", "value"], rows)]
    parts += ["<h3>Tolerances</h3>",
              table(["check", "value", "limit", "kind", "passed"],
                    [[c["name"], c["value"], c["limit"], c["kind"], c["passed"]] for c in d["checks"]])]
    return "\n".join(parts)


def run_section(result) -> str:
    sat = sum(int(v) for v in result.saturations.values())
    rows = [["backend", result.backend], ["precision", result.precision], ["seconds", result.seconds],
            ["saturations", sat]] + [[f"output {k}", "x".join(map(str, v.shape))] for k, v in result.outputs.items()]
    return "<h2>Run</h2>" + table(["field", "value"], rows)


def layers_section(report) -> str:
    rows = [[s.name, s.max_abs_err, s.rel_l2_err, s.cosine_mean, s.cosine_min] for s in report.layers]
    return (f"<h3>Per-layer error on the {html.escape(report.backend)} simulator ({html.escape(report.precision)})"
            "</h3>" + table(["layer", "max abs err", "rel L2 err", "cosine mean", "cosine min"], rows))


def write_report(path: Path, title: str, report=None, run=None, figures=(), resources: dict | None = None,
                 favor: dict | None = None, layers_from=None) -> Path:
    """Write the page to ``path``; figures are (caption, PNG path) pairs in the same directory."""
    path = Path(path)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"]
    if figures:
        links = "".join(f"<li><a href='#{Path(p).stem}'>{html.escape(c)}</a></li>" for c, p in figures)
        parts.append(f"<ul>{links}</ul>")
    if report is not None:
        parts.append(verify_section(report))
    if layers_from is not None and layers_from is not report and layers_from.layers:
        parts.append(layers_section(layers_from))
    if run is not None:
        parts.append(run_section(run))
    if resources:
        rows = [[k, v] for k, v in resources.items() if isinstance(v, (int, float, str))]
        parts += ["<h2>Chip resources</h2>", table(["quantity", "value"], rows)]
    if favor:
        parts += ["<h2>Favor lowering: error vs m</h2>",
                  table(["m", "output rel L2 err"], [[m, e] for m, e in sorted(favor.items())])]
    for caption, fig in figures:
        name = html.escape(Path(fig).name)
        parts.append(f"<figure id='{Path(fig).stem}'><a href='{name}'><img src='{name}' alt='{html.escape(caption)}'>"
                     f"</a><figcaption>{html.escape(caption)}</figcaption></figure>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
