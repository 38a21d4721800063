"""Where shards run: in this process, on local worker processes, or on a Dask cluster.

One code path serves both parallel cases: ``--workers N`` starts a ``dask.distributed``
``LocalCluster`` of N single-threaded worker processes, ``--scheduler ADDRESS`` connects to a
running cluster.  The network (and verify's reference) is scattered to every worker once.  Dask's
worker processes are daemonic by default and a daemonic process may not start children, which the
Lava backend does; the local cluster's workers are started non-daemonic
(``distributed.worker.daemon: False``), and so must a remote cluster's be for ``--backend lava``.
Results are handed to ``on_result`` as shards finish, in completion order.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable

from compiler.errors import InputError
from runtime.shards.sources import Shard
from runtime.shards.tasks import ShardJob, ShardOutcome, run_shard


def default_workers() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def execute(net, shards: list[Shard], job: ShardJob, on_result: Callable[[Shard, ShardOutcome], bool],
            workers: int = 1, scheduler: str | None = None, reference=None) -> None:
    """Run every shard; ``on_result(shard, outcome)`` returns False to stop the remaining shards."""
    if not shards:
        return
    if scheduler is None and min(workers, len(shards)) <= 1:
        for shard in shards:
            if not on_result(shard, run_shard(net, shard, job, reference)):
                return
        return
    with connect(min(workers, len(shards)), scheduler) as client:
        run_on_client(client, net, shards, job, on_result, reference)


def run_on_client(client, net, shards, job, on_result, reference) -> None:
    from distributed import as_completed

    net_future = client.scatter(net, broadcast=True, hash=False)
    ref_future = client.scatter(reference, broadcast=True, hash=False) if reference is not None else None
    token = uuid.uuid4().hex[:8]
    by_key = {}
    futures = []
    for shard in shards:
        future = client.submit(run_shard, net_future, shard, job, ref_future, key=f"shard-{shard.index}-{token}",
                               pure=False, retries=0)
        by_key[future.key] = shard
        futures.append(future)
    pending = as_completed(futures)
    try:
        for future in pending:
            if not on_result(by_key[future.key], future.result()):
                break
    finally:
        client.cancel(futures)


class connect:  # noqa: N801  (a context manager used like a function)
    """A Dask client: of a running scheduler at ``address``, else of a LocalCluster of ``workers``
    non-daemonic single-threaded worker processes, closed (workers and all) on exit."""

    def __init__(self, workers: int, address: str | None = None):
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise InputError("--workers above 1 and --scheduler need dask.distributed: "
                             "pip install 'tripartite[dask]' (or run with --workers 1)") from None
        self.cluster = None
        try:
            if address is not None:
                self.client = Client(address, timeout="10s")
            else:
                with dask.config.set({"distributed.worker.daemon": False}):
                    self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                dashboard_address=None, silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
        except (OSError, TimeoutError, ValueError) as exc:
            where = f"the Dask scheduler at {address}" if address else "a local Dask cluster"
            raise InputError(f"could not connect to {where} ({str(exc).splitlines()[0]})") from None

    def __enter__(self):
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
