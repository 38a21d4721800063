"""Exporting all-MiniLM-L6-v2 as a netlist and as NIR: time, size, NIR node counts, identical outputs.

For each precision (float32 and loihi2, exact lowering): write and read back the netlist and the
NIR file, count NIR's standard nodes, dialect nodes and port adapters, and run the golden
simulator on two sentences with the original and each read-back network (outputs must be
identical).  Prints a table and writes benchmarks/results/export.json.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.exporters import load_network  # noqa: E402
from compiler.exporters.netlist import write_netlist  # noqa: E402
from compiler.exporters.nir_format import counts, export_nir  # noqa: E402
from compiler.frontends.source import minilm_dir  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from runtime.inputs import from_texts  # noqa: E402

SENTENCES = ["A cat sat on the mat.", "Neurons and astrocytes compute attention."]
WRITERS = {"netlist": (write_netlist, "h5"), "nir": (export_nir, "nir")}


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def measure(precision: str, directory: Path) -> list[dict]:
    net = compiler.compile(minilm_dir(), lowering="exact", precision=precision)
    batch = from_texts(net.encoder, SENTENCES, net.meta)
    want = simulate(net, batch.x, batch.mask, precision=precision).outputs
    rows = []
    for fmt, (write, suffix) in WRITERS.items():
        path, write_s = timed(write, net, directory / f"minilm-{precision}.{suffix}")
        back, read_s = timed(load_network, path)
        got = simulate(back, batch.x, batch.mask, precision=precision).outputs
        row = {"format": fmt, "precision": precision, "write_s": write_s, "read_s": read_s,
               "megabytes": path.stat().st_size / 1e6, "same_graph": back.same_as(net),
               "identical_outputs": all(np.array_equal(want[k], got[k]) for k in want)}
        if fmt == "nir":
            import nir

            c = counts(nir.read(path))
            row.update({part: dict(sorted(c[part].items())) for part in c})
            row.update({f"{part}_total": sum(c[part].values()) for part in c})
        rows.append(row)
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = [row for precision in ("float32", "loihi2") for row in measure(precision, Path(tmp))]
    header = f"{'format':8} {'precision':9} {'write s':>8} {'read s':>7} {'MB':>7} identical"
    print(header + "  NIR standard/dialect/adapters")
    for r in rows:
        nodes = f"{r['standard_total']}/{r['dialect_total']}/{r['adapters_total']}" if r["format"] == "nir" else ""
        print(f"{r['format']:8} {r['precision']:9} {r['write_s']:8.2f} {r['read_s']:7.2f} {r['megabytes']:7.1f} "
              f"{str(r['same_graph'] and r['identical_outputs']):9}  {nodes}")
    out = ROOT / "benchmarks" / "results" / "export.json"
    out.write_text(json.dumps({"model": "all-MiniLM-L6-v2", "lowering": "exact", "sentences": len(SENTENCES),
                               "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
