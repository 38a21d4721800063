"""The shard directory ``OUT.shards/``: one file per finished shard and a JSON manifest.

``manifest.json`` records the run's fingerprint (network file digest and the options that change
outputs) and, per shard, its input lines, the digest of its inputs, its file and its status
(``done`` or ``failed`` with the one-line error).  Every file is written to a temporary name and
renamed into place, so an interrupted run leaves only whole files; ``--resume`` reuses each shard
whose file exists and whose input digest is unchanged, and recomputes nothing else.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np

from compiler.atomic import atomic_write, atomic_write_text
from compiler.errors import InputError
from compiler.npzfile import write_npz
from runtime.shards.sources import Shard
from runtime.shards.tasks import ShardOutcome

MANIFEST = "manifest.json"
VERSION = 1


def file_digest(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:24]


class ShardStore:
    """Finished shards of one run, kept in ``<output>.shards/`` (module docstring)."""

    def __init__(self, output: str | Path, fingerprint: dict, resume: bool = False):
        self.output = Path(output)
        self.dir = self.output.with_name(self.output.name + ".shards")
        self.fingerprint = fingerprint
        self.entries: dict[str, dict] = {}
        self.persistent = True
        manifest = self.dir / MANIFEST
        if manifest.exists():
            previous = self.read_manifest(manifest)
            done = sum(e.get("status") == "done" for e in previous.get("shards", {}).values())
            if not resume:
                raise InputError(f"{self.dir} holds {done} finished shard(s) of an earlier run: add --resume to "
                                 "continue it, or delete that directory to start again")
            if previous.get("fingerprint") != fingerprint:
                changed = sorted(k for k in set(fingerprint) | set(previous.get("fingerprint", {}))
                                 if fingerprint.get(k) != previous.get("fingerprint", {}).get(k))
                raise InputError(f"{self.dir}: --resume with different {', '.join(changed)} than the interrupted "
                                 "run; rerun with the same network and options, or delete that directory")
            self.entries = previous.get("shards", {})
        self.dir.mkdir(parents=True, exist_ok=True)

    def read_manifest(self, path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: unreadable shard manifest ({exc}); delete {self.dir} to start again") from None
        if not isinstance(data, dict) or data.get("version") != VERSION or not isinstance(data.get("shards"), dict):
            raise InputError(f"{path}: not a shard manifest of this tripartite; delete {self.dir} to start again")
        return data

    def write_manifest(self) -> None:
        atomic_write_text(self.dir / MANIFEST, json.dumps(
            {"version": VERSION, "fingerprint": self.fingerprint, "shards": self.entries}, indent=1, sort_keys=True))

    def file_of(self, shard: Shard, kind: str) -> Path:
        return self.dir / f"shard-{shard.index:06d}.{kind}"

    def is_done(self, shard: Shard) -> bool:
        entry = self.entries.get(str(shard.index))
        return bool(entry and entry.get("status") == "done" and entry.get("digest") == shard.digest
                    and (self.dir / entry["file"]).is_file())

    def save(self, shard: Shard, outcome: ShardOutcome) -> None:
        """Keep a finished (or failed) shard: its file first, then its manifest entry."""
        entry = {"first": shard.first, "last": shard.last, "unit": shard.unit, "digest": shard.digest,
                 "sequences": outcome.sequences, "tokens": outcome.tokens, "seconds": round(outcome.seconds, 3)}
        if outcome.error:
            entry.update(status="failed", error=outcome.error)
        elif outcome.stats:
            path = self.file_of(shard, "json")
            atomic_write_text(path, json.dumps(outcome.stats, sort_keys=True))
            entry.update(status="done", file=path.name)
        else:
            path = self.file_of(shard, "npz")
            with atomic_write(path) as fh:
                write_npz(fh, outcome.arrays)
            entry.update(status="done", file=path.name)
        self.entries[str(shard.index)] = entry
        self.write_manifest()

    def load(self, shard: Shard) -> ShardOutcome:
        """A finished shard's outcome read back from its file."""
        entry = self.entries[str(shard.index)]
        path = self.dir / entry["file"]
        outcome = ShardOutcome(shard.index, sequences=entry["sequences"], tokens=entry["tokens"])
        try:
            if path.suffix == ".json":
                outcome.stats = json.loads(path.read_text())
            else:
                with np.load(path, allow_pickle=False) as data:
                    outcome.arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
            raise InputError(f"{path}: unreadable shard file ({exc}); delete it and rerun with --resume") from None
        return outcome

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
