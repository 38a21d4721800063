"""``run`` and ``verify`` over shards: plan, skip finished shards, execute, keep, merge.

A run writes each finished shard to ``OUT.shards/`` as it arrives; a failed shard is reported with
its input lines and the others go on (unless ``fail_fast``); once every shard is done the outputs
are merged in input order into ``OUT`` and the shard directory is removed.  An interrupted run
(Ctrl-C, SIGTERM, SIGHUP, a crash) leaves the finished shards and the manifest for ``--resume``.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from compiler.errors import TripartiteError
from runtime.limits import check_memory, token_limit
from runtime.shards.executor import default_workers, execute
from runtime.shards.merge import merge_outputs, merge_verify
from runtime.shards.sources import Shard
from runtime.shards.store import ShardStore, file_digest
from runtime.shards.tasks import ShardJob, ShardOutcome
from runtime.signals import check_terminated

DEFAULT_SHARD_SIZE = 32


class ShardFailureError(TripartiteError):
    """Some shards failed; the finished ones are kept for ``--resume``."""


@dataclass
class ShardOptions:
    workers: int | None = None
    scheduler: str | None = None
    shard_size: int = DEFAULT_SHARD_SIZE
    resume: bool = False
    fail_fast: bool = False
    force: bool = False
    progress: bool = True


class ShardProgress:
    """A rich progress bar over shards, with the tokens done so far."""

    def __init__(self, description: str, total: int, done: int, enabled: bool):
        self.bar = None
        self.tokens = 0
        if enabled and total > done:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TextColumn("shards"),
                                TextColumn("{task.fields[tokens]} tokens"), TimeElapsedColumn(),
                                console=Console(stderr=True), transient=True)
            self.task = self.bar.add_task("shards", total=total, completed=done, tokens=0)

    def __enter__(self):
        if self.bar is not None:
            self.bar.start()
        return self

    def advance(self, tokens: int) -> None:
        self.tokens += tokens
        if self.bar is not None:
            self.bar.update(self.task, advance=1, tokens=self.tokens)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def process_shards(net, shards: list[Shard], job: ShardJob, store: ShardStore, opts: ShardOptions,
                   reference=None) -> list[ShardOutcome]:
    """Run the shards the store does not hold yet; return every shard's outcome in input order."""
    todo = [s for s in shards if not store.is_done(s)]
    workers = opts.workers or default_workers()
    if len(shards) == 1 and opts.scheduler is None:
        job = replace(job, raise_errors=True)
    if todo:
        size = max(s.size for s in todo)
        check_memory(net, size, token_limit(net) or 128, job.probes, copies=min(workers, len(todo)),
                     force=opts.force)
    failures: list[str] = []

    def on_result(shard: Shard, outcome: ShardOutcome) -> bool:
        store.save(shard, outcome)
        check_terminated()  # a signal whose exception a finaliser swallowed still stops the run here
        progress.advance(outcome.tokens)
        if outcome.error:
            failures.append(shard.describe())
            print(f"tripartite {job.mode}: shard {shard.index} ({shard.describe()} of {job.source}) failed: "
                  f"{outcome.error}", file=sys.stderr)
            return not opts.fail_fast
        return True

    try:
        with ShardProgress(f"{job.mode} on {job.backend}", len(shards), len(shards) - len(todo),
                           opts.progress) as progress:
            execute(net, todo, job, on_result, workers=workers, scheduler=opts.scheduler, reference=reference)
    except BaseException:
        kept = sum(store.is_done(s) for s in shards)
        if kept and store.persistent:
            print(f"tripartite {job.mode}: {kept} finished shard(s) kept in {store.dir}; rerun with --resume",
                  file=sys.stderr)
        raise
    missing = [s for s in shards if not store.is_done(s)]
    if failures or missing:
        named = failures or [s.describe() for s in missing]
        where = (f"the finished ones are kept in {store.dir}: fix the inputs and rerun with --resume"
                 if store.persistent else "fix the inputs and rerun")
        raise ShardFailureError(f"{len(missing)} of {len(shards)} shard(s) of {job.source} not done "
                                f"({', '.join(named[:5])}{', ...' if len(named) > 5 else ''}); {where}")
    return [store.load(s) for s in shards]


def fingerprint(net_path, job: ShardJob, shard_size: int, extra: dict | None = None) -> dict:
    return {"network": file_digest(net_path), "mode": job.mode, "backend": job.backend,
            "granularity": job.granularity, "probes": sorted(job.probes), "truncate": job.truncate,
            "shard_size": shard_size, **(extra or {})}


def run_sharded(net_path, net, shards: list[Shard], job: ShardJob, output, opts: ShardOptions) -> dict:
    """``tripartite run`` over shards; writes the merged outputs to ``output``; returns a summary."""
    from runtime.run import save_outputs
    from runtime.text import pad_id

    store = ShardStore(output, fingerprint(net_path, job, opts.shard_size), resume=opts.resume)
    outcomes = process_shards(net, shards, job, store, opts)
    pad = pad_id(net.encoder) if net.encoder is not None and net.encoder.token_embeddings is not None else 0
    save_outputs(output, merge_outputs([o.arrays for o in outcomes], pad))
    store.remove()
    return {"sequences": sum(o.sequences for o in outcomes), "tokens": sum(o.tokens for o in outcomes),
            "seconds": sum(o.seconds for o in outcomes), "shards": len(outcomes)}


def verify_sharded(net_path, net, reference, shards: list[Shard], job: ShardJob, opts: ShardOptions, rtol=None,
                   keep_as=None):
    """``tripartite verify`` over shards: one report with exactly merged statistics.  Finished shards
    are kept beside ``keep_as`` (the ``--json`` file) for ``--resume``; without it in a temporary
    directory."""
    from runtime.verify import load_reference

    graph = load_reference(reference)
    extra = {"reference": str(reference)}
    if keep_as is None:
        if opts.resume:
            raise TripartiteError("verify --resume needs --json OUT: the finished shards are kept beside it")
        with tempfile.TemporaryDirectory(prefix="tripartite-verify-") as tmp:
            store = ShardStore(Path(tmp) / "verify.json", fingerprint(net_path, job, opts.shard_size, extra))
            store.persistent = False
            outcomes = process_shards(net, shards, job, store, opts, reference=graph)
    else:
        store = ShardStore(keep_as, fingerprint(net_path, job, opts.shard_size, extra), resume=opts.resume)
        outcomes = process_shards(net, shards, job, store, opts, reference=graph)
        store.remove()
    return merge_verify([o.stats for o in outcomes], rtol)
