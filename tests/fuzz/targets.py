"""Fuzz targets: one per loader, each turning fuzzer bytes into a hostile file and reading it.

A target takes ``data`` (bytes from the fuzzing engine) and a scratch directory.  The bytes drive a
structure-aware mutation of a valid seed (:class:`Choices` reads decisions from them): byte flips,
truncation and splicing of the raw file, and for ``.npz`` archives, JSON documents and safetensors
headers, edits of one member, key or value (wrong types, huge or negative numbers, NaN, missing
keys, other dtypes and shapes).  The loader must either succeed or raise a
:class:`compiler.errors.TripartiteError` with a one-line message; anything else is a crash.

Loaders: ``.tpn`` process graphs, ``.tpg`` attention graphs, Hugging Face checkpoint directories
(``config.json`` + safetensors), ``tokenizer.json``, ``--inputs`` npz, text/JSONL input files,
HDF5 netlists, ONNX files, GGUF files.
"""

from __future__ import annotations

import importlib.util
import io
import json
import shutil
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"

HOSTILE_VALUES = [None, -1, 0, 1, 2**31, 2**63, -(2**63), 1e308, float("nan"), float("inf"), "", "x" * 300,
                  [], {}, [1, 2], True, "float64", "causal", {"format": "x"}]


class Choices:
    """Decisions read from fuzzer bytes (zeros once they run out)."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        self.pos += 1
        return self.data[self.pos - 1]

    def below(self, n: int) -> int:
        if n <= 1:
            return 0
        value = 0
        for _ in range(1 + (n > 256) + (n > 65536)):
            value = value * 256 + self.byte()
        return value % n

    def pick(self, items):
        items = list(items)
        return items[self.below(len(items))] if items else None

    def rest(self) -> bytes:
        return self.data[self.pos :]


# ---- generic mutations ---------------------------------------------------------------------------------
def mutate_bytes(blob: bytes, c: Choices) -> bytes:
    b = bytearray(blob)
    for _ in range(1 + c.below(4)):
        op = c.below(5)
        at = c.below(len(b) + 1)
        if op == 0 and b:  # flip bits of one byte
            b[min(at, len(b) - 1)] ^= 1 << c.below(8)
        elif op == 1:  # truncate
            del b[at:]
        elif op == 2:  # insert fuzzer bytes
            b[at:at] = c.rest()[: 1 + c.below(64)]
        elif op == 3 and b:  # overwrite with an interesting integer
            value = c.pick([0, 0xFF, 0x7F, 0x80, 0xFFFFFFFF, 2**63 - 1])
            b[at : at + 8] = struct.pack("<Q", value & (2**64 - 1))
        else:  # duplicate a slice
            n = c.below(64)
            b[at:at] = b[at : at + n]
    return bytes(b)


def mutate_json(doc, c: Choices, depth: int = 0):
    """``doc`` with one value somewhere inside replaced, a key removed or added."""
    if isinstance(doc, dict) and doc and depth < 8:
        key = c.pick(sorted(doc, key=str))
        op = c.below(8)
        out = dict(doc)
        if op == 0:
            del out[key]
        elif op == 1:
            out[c.pick(["format", "version", "nodes", "kind", "x", "meta"])] = c.pick(HOSTILE_VALUES)
        elif op == 2:
            out[key] = c.pick(HOSTILE_VALUES)
        else:
            out[key] = mutate_json(doc[key], c, depth + 1)
        return out
    if isinstance(doc, list) and doc and depth < 8:
        out = list(doc)
        i = c.below(len(out))
        op = c.below(6)
        if op == 0:
            del out[i]
        elif op == 1:
            out.append(c.pick(HOSTILE_VALUES))
        elif op == 2:
            out[i] = c.pick(HOSTILE_VALUES)
        else:
            out[i] = mutate_json(out[i], c, depth + 1)
        return out
    if isinstance(doc, bool) or doc is None:
        return c.pick(HOSTILE_VALUES)
    if isinstance(doc, (int, float)):
        return c.pick([-doc, doc * 1000, doc + 1, doc - 1, 0, -1, 2**40, float("nan"), str(doc), None])
    if isinstance(doc, str):
        return c.pick(["", doc + "x", doc[:-1], "\x00", 1, None, doc.upper(), "../" + doc])
    return c.pick(HOSTILE_VALUES)


def json_text(doc) -> str:
    return json.dumps(doc, allow_nan=True)


def mutate_array(a: np.ndarray, c: Choices) -> np.ndarray:
    op = c.below(8)
    if op == 0 and a.size:
        b = a.astype(np.float64).copy().ravel()
        b[c.below(b.size)] = c.pick([np.nan, np.inf, -np.inf, 1e300])
        return b.reshape(a.shape)
    if op == 1:
        return a.reshape(-1) if a.ndim != 1 else a.reshape(1, -1)
    if op == 2:
        return a[: c.below(max(a.shape[0], 1) + 1)] if a.ndim else a
    if op == 3:
        return a.astype(c.pick([np.int8, np.uint8, np.int64, np.float16, np.bool_, np.complex64, np.float32]))
    if op == 4:
        return np.zeros((0,) + a.shape[1:], a.dtype) if a.ndim else np.zeros(0)
    if op == 5:
        return np.array("text")
    if op == 6 and a.size:
        return np.repeat(a, 2, axis=0) if a.ndim else a
    return np.asarray(c.below(2**16) - 2**15, dtype=a.dtype if a.dtype.kind in "iuf" else np.int64)


def object_npy() -> bytes:
    """An .npy member declaring an object dtype (never unpickled by the loaders)."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header += " " * (63 - len(header)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\x80\x04N."


def mutate_npz(blob: bytes, c: Choices) -> bytes:
    """Mutate one member of an npz archive (its JSON structure, an array, its raw bytes) or the list."""
    if c.below(8) == 0:
        return mutate_bytes(blob, c)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        members = {name: z.read(name) for name in z.namelist()}
    name = c.pick(sorted(members))
    op = c.below(7)
    if op == 0:
        del members[name]
    elif op == 1:
        members[c.pick(["extra.npy", "__structure__.npy", name])] = object_npy()
    elif op == 2:
        members[name] = mutate_bytes(members[name], c)
    else:
        array = np.load(io.BytesIO(members[name]), allow_pickle=False)
        if name == "__structure__.npy":
            try:
                doc = json.loads(array.tobytes().decode("utf-8"))
                new = json_text(mutate_json(doc, c)).encode("utf-8")
            except ValueError:
                new = mutate_bytes(array.tobytes(), c)
            array = np.frombuffer(new, dtype=np.uint8)
        else:
            array = mutate_array(array, c)
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asanyarray(array), allow_pickle=False)
        members[name] = buf.getvalue()
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for key, value in members.items():
            z.writestr(key, value)
    return out.getvalue()


def mutate_safetensors(blob: bytes, c: Choices) -> bytes:
    """Mutate the JSON header (dtype, shape, offsets), its length field or the data."""
    if len(blob) < 8 or c.below(3) == 0:
        return mutate_bytes(blob, c)
    n = struct.unpack("<Q", blob[:8])[0]
    try:
        header = json.loads(blob[8 : 8 + n])
    except ValueError:
        return mutate_bytes(blob, c)
    header = mutate_json(header, c)
    text = json_text(header).encode()
    return struct.pack("<Q", len(text)) + text + blob[8 + n :]


def mutate_text(text: str, c: Choices) -> str:
    try:
        return json_text(mutate_json(json.loads(text), c))
    except ValueError:
        return mutate_bytes(text.encode(), c).decode("utf-8", "replace")


# ---- targets -------------------------------------------------------------------------------------------
class Target:
    """A loader under fuzzing: ``seed(dir)`` writes a valid file or directory once; ``run(data, dir)``
    writes a mutated copy and reads it."""

    def __init__(self, name: str, seed: Callable[[Path], Path], mutate: Callable, read: Callable[[Path], object]):
        self.name, self.seed_fn, self.mutate, self.read = name, seed, mutate, read
        self.seed_path: Path | None = None

    def prepare(self, scratch: Path) -> None:
        if self.seed_path is None:
            (scratch / "seeds").mkdir(parents=True, exist_ok=True)
            self.seed_path = self.seed_fn(scratch / "seeds")

    def materialise(self, data: bytes, scratch: Path) -> Path:
        c = Choices(data)
        work = scratch / "case"
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        src = self.seed_path
        if src.is_dir():
            dst = work / src.name
            shutil.copytree(src, dst)
            files = sorted(p for p in dst.iterdir() if p.is_file())
            victim = c.pick(files)
            victim.write_bytes(self.mutate(victim, victim.read_bytes(), c))
            return dst
        dst = work / src.name
        dst.write_bytes(self.mutate(src, src.read_bytes(), c))
        return dst

    def run(self, data: bytes, scratch: Path) -> None:
        self.read(self.materialise(data, scratch))


def by_kind(path: Path, blob: bytes, c: Choices) -> bytes:
    """The structure-aware mutation for ``path``'s kind of file."""
    if zipfile.is_zipfile(io.BytesIO(blob)):
        return mutate_npz(blob, c)
    if path.suffix == ".safetensors":
        return mutate_safetensors(blob, c)
    if path.suffix == ".json":
        return mutate_text(blob.decode("utf-8", "replace"), c).encode("utf-8", "replace")
    return mutate_bytes(blob, c)


def seed_net(scratch: Path) -> Path:
    from compiler.api import compile as compile_model
    from compiler.models import random_bert

    return compile_model(random_bert(seed=1), max_tokens=8, precision="loihi2").save(scratch / "net.tpn")


def seed_graph(scratch: Path) -> Path:
    from compiler.models import LlamaConfig, random_llama

    return random_llama(LlamaConfig(num_hidden_layers=1), seed=1).save(scratch / "graph.tpg")


def seed_checkpoint(scratch: Path) -> Path:
    dst = scratch / "llama_untied"
    shutil.copytree(FIXTURES / "models" / "llama_untied", dst, ignore=shutil.ignore_patterns("expected.npz"))
    return dst


def seed_tokenizer(scratch: Path) -> Path:
    dst = scratch / "bert_tok"
    shutil.copytree(FIXTURES / "models" / "bert", dst, ignore=shutil.ignore_patterns("expected.npz"))
    shutil.copy(FIXTURES / "onnx" / "bert_dynamo" / "tokenizer.json", dst / "tokenizer.json")
    return dst


def seed_inputs(scratch: Path) -> Path:
    path = scratch / "inputs.npz"
    with open(path, "wb") as fh:
        np.savez(fh, input_ids=np.array([[1, 2, 3, 4], [5, 6, 7, 0]]), mask=np.array([[1, 1, 1, 1], [1, 1, 1, 0]],
                                                                                      bool),
                 token_type_ids=np.zeros((2, 4), np.int64), labels=np.array([1, 0]))
    return path


def seed_jsonl(scratch: Path) -> Path:
    path = scratch / "texts.jsonl"
    path.write_text('{"text": "a cat sat"}\n{"text": "on the mat", "id": 2}\n\n{"text": "\\u00e9t\\u00e9"}\n')
    return path


def seed_netlist(scratch: Path) -> Path:
    from compiler.api import compile as compile_model
    from compiler.exporters.netlist import write_netlist
    from compiler.models import random_bert

    return write_netlist(compile_model(random_bert(seed=1), max_tokens=8), scratch / "net.h5")


def seed_onnx(scratch: Path) -> Path:
    dst = scratch / "bert_dynamo"
    shutil.copytree(FIXTURES / "onnx" / "bert_dynamo", dst)
    return dst


def seed_gguf(scratch: Path) -> Path:
    spec = importlib.util.spec_from_file_location("gguf_fixture", ROOT / "tests" / "compiler" / "test_gguf_import.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_gguf(scratch / "model.gguf", "llama_untied")


def read_net(path: Path):
    from compiler.process import ProcessGraph

    ProcessGraph.load(path).validate()


def read_graph(path: Path):
    from compiler.attention import AttentionGraph

    AttentionGraph.load(path).validate()


def read_checkpoint(path: Path):
    from compiler.frontends.hf_checkpoint import load_checkpoint

    load_checkpoint(path)


def read_tokenizer(path: Path):
    from compiler.frontends.hf_checkpoint import load_checkpoint
    from runtime.text import tokenize

    graph = load_checkpoint(path)
    tokenize(graph, ["a cat sat on the mat", ""])


def read_inputs(path: Path):
    from runtime.inputs import load_npz_inputs

    load_npz_inputs(path, _bert_encoder(), 32)


_ENCODER: list = []


def _bert_encoder():
    if not _ENCODER:
        from compiler.models import random_bert

        _ENCODER.append(random_bert(seed=1).encoder)
    return _ENCODER[0]


def read_jsonl(path: Path):
    from runtime.shards.sources import numbered_texts

    numbered_texts(path)


def read_netlist_file(path: Path):
    from compiler.exporters.netlist import read_netlist

    read_netlist(path)


def read_onnx(path: Path):
    from compiler.frontends.source import load_source

    load_source(path / "model.onnx")


def read_gguf(path: Path):
    from compiler.frontends.source import load_source

    load_source(path)


TARGETS = {t.name: t for t in [
    Target("tpn", seed_net, by_kind, read_net),
    Target("tpg", seed_graph, by_kind, read_graph),
    Target("checkpoint", seed_checkpoint, by_kind, read_checkpoint),
    Target("tokenizer", seed_tokenizer, by_kind, read_tokenizer),
    Target("inputs", seed_inputs, by_kind, read_inputs),
    Target("jsonl", seed_jsonl, lambda p, b, c: mutate_bytes(b, c), read_jsonl),
    Target("netlist", seed_netlist, lambda p, b, c: mutate_bytes(b, c), read_netlist_file),
    Target("onnx", seed_onnx, by_kind, read_onnx),
    Target("gguf", seed_gguf, lambda p, b, c: mutate_bytes(b, c), read_gguf),
]}


def is_documented(exc: BaseException) -> bool:
    """A documented failure: a TripartiteError whose message is one line."""
    from compiler.errors import TripartiteError

    return isinstance(exc, TripartiteError) and "\n" not in str(exc).strip()
