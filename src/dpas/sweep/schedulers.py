"""Where a sweep's points run: a local process pool (the default), or a dask.distributed
cluster (``local:N`` starts one here, ``tcp://HOST:PORT`` joins one). Each gives back rows as
points finish (each its row and record), in whatever order they finish."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dpas.bench.sweep import unordered, workers
from dpas.errors import DpasError
from dpas.sweep.grid import Point
from dpas.sweep.run import Finished, run_point

#: how long joining a tcp:// scheduler may take before it is called unreachable
CONNECT_TIMEOUT_S = 3
Task = tuple[Point, int]
Runner = Callable[[list[Task]], Iterator[Finished]]


class SchedulerError(DpasError):
    """A --scheduler that is not one, or cannot be reached."""


@dataclass(frozen=True, slots=True)
class Scheduler:
    """``kind`` pool, local (a LocalCluster of ``workers``) or tcp (``address``)."""

    kind: str
    workers: int
    address: str = ""


def parse(text: str | None, workers_n: int | None) -> Scheduler:
    """--scheduler: none (the pool), local:N, or tcp://HOST:PORT; --workers sizes the pool."""
    n = workers_n or workers()
    if text is None or text == "pool":
        return Scheduler("pool", n)
    if text.startswith("local:"):
        count = text.removeprefix("local:")
        if not count.isascii() or not count.isdigit() or not 1 <= int(count) <= 1024:
            raise SchedulerError(f"--scheduler {text}: expected local:N with N from 1 to 1024")
        return Scheduler("local", int(count))
    if text.startswith("tcp://") and ":" in text.removeprefix("tcp://"):
        return Scheduler("tcp", n, text)
    raise SchedulerError(f"--scheduler {text}: expected local:N or tcp://HOST:PORT")


@contextlib.contextmanager
def connected(scheduler: Scheduler) -> Iterator[Runner]:
    """The scheduler, ready (a cluster started or joined, refused in one line if it cannot
    be), as a function from tasks to their rows as each finishes; closed on leaving."""
    if scheduler.kind == "pool":
        yield lambda tasks: _pool(tasks, scheduler.workers)
        return
    client, cluster = _client(scheduler)
    try:
        yield lambda tasks: _stream(client, tasks)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_task(task: Task) -> Finished:
    return run_point(*task)


def _pool(tasks: list[Task], n: int) -> Iterator[Finished]:
    """dpas bench's pool: workers that die with this process and leave Ctrl-C to it."""
    if n == 1 or len(tasks) <= 1:
        yield from (_run_task(t) for t in tasks)
        return
    yield from unordered(_run_task, tasks, n)


def _client(scheduler: Scheduler) -> tuple[Any, Any]:
    """A dask Client of a LocalCluster started here (local:N) or of a running scheduler."""
    import logging

    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR)
    if scheduler.kind == "local":
        cluster = LocalCluster(
            n_workers=scheduler.workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
        )
        return Client(cluster), cluster
    try:
        return Client(scheduler.address, timeout=f"{CONNECT_TIMEOUT_S}s"), None
    except (OSError, TimeoutError) as err:
        raise SchedulerError(
            f"--scheduler {scheduler.address}: cannot connect within {CONNECT_TIMEOUT_S} s "
            f"({' '.join(str(err).split())[:120]})"
        ) from None


def _stream(client: Any, tasks: list[Task]) -> Iterator[Finished]:
    """Each point one task named by its key (retried twice if its worker is lost), rows
    streamed back as tasks complete."""
    from distributed import as_completed

    futures = [
        client.submit(run_point, point, d_init, key=point.key(), retries=2)
        for point, d_init in tasks
    ]
    for future in as_completed(futures):
        yield future.result()
        future.release()
