"""Large inputs in shards: split, run on local workers or a Dask cluster, keep every finished shard.

    sources   inputs (text file, JSONL with a ``text`` field, --text, npz) -> numbered shards
    tasks     what a worker does with one shard (run, or verify's mergeable statistics)
    executor  in-process, local worker processes (a Dask LocalCluster) or a remote Dask scheduler
    store     OUT.shards/: one file per finished shard + manifest.json, for --resume
    merge     shard outputs -> one run output in input order; verify statistics merged exactly
    driver    the ``run`` / ``verify`` commands over shards
"""

from runtime.shards.driver import ShardOptions, run_sharded, verify_sharded

__all__ = ["ShardOptions", "run_sharded", "verify_sharded"]
