"""The sharded paths of ``tripartite run`` and ``tripartite verify`` (see :mod:`runtime.shards`)."""

from __future__ import annotations

from compiler.errors import InputError
from runtime.shards import ShardOptions, run_sharded, verify_sharded
from runtime.shards.driver import DEFAULT_SHARD_SIZE
from runtime.shards.sources import make_shards
from runtime.shards.tasks import ShardJob

SHARD_FLAGS = ("workers", "scheduler", "shard_size", "resume", "fail_fast")


def explicit_shard_flags(args) -> list[str]:
    return ["--" + f.replace("_", "-") for f in SHARD_FLAGS if getattr(args, f, None) not in (None, False)]


def use_shards(args) -> bool:
    """Shards serve every run and verify except generation and plots (they need the whole run in
    memory); asking for both is refused."""
    whole = [flag for flag, on in (("--generate", getattr(args, "generate", 0)), ("--plots", args.plots)) if on]
    if whole:
        flags = explicit_shard_flags(args)
        if flags:
            raise InputError(f"{whole[0]} needs the whole run in one process; drop {', '.join(flags)}")
        return False
    return True


def shard_options(args) -> ShardOptions:
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers {args.workers}: give a positive number of worker processes")
    return ShardOptions(workers=args.workers, scheduler=args.scheduler,
                        shard_size=args.shard_size or DEFAULT_SHARD_SIZE, resume=args.resume,
                        fail_fast=args.fail_fast, force=args.force)


def job_for(args, mode: str, source: str) -> ShardJob:
    probes = tuple(p for p in getattr(args, "probe", "").split(",") if p)
    return ShardJob(mode=mode, backend=args.backend, granularity=args.granularity, probes=probes,
                    timeout=args.timeout, truncate=args.truncate, source=source)


def cmd_run_sharded(args, net) -> int:
    opts = shard_options(args)
    shards, source = make_shards(args, opts.shard_size)
    summary = run_sharded(args.net, net, shards, job_for(args, "run", source), args.output, opts)
    print(f"ran {summary['sequences']} sequence(s), {summary['tokens']} tokens in {summary['shards']} shard(s) on "
          f"{args.backend} in {summary['seconds']:.2f} s of worker time; wrote {args.output}")
    return 0


def cmd_verify_sharded(args, net):
    """The merged :class:`runtime.verify.VerifyReport` of a sharded verify."""
    opts = shard_options(args)
    shards, source = make_shards(args, opts.shard_size)
    return verify_sharded(args.net, net, args.reference, shards, job_for(args, "verify", source), opts,
                          rtol=args.rtol, keep_as=args.json)
