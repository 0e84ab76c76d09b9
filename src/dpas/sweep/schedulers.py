"""Where a sweep's points run: a local process pool (the default), or a dask.distributed
cluster (``local:N`` starts one here, ``tcp://HOST:PORT`` joins one). Each gives back rows as
points finish (each its row and record), in whatever order they finish."""

from __future__ import annotations

import contextlib
import signal
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing import resource_tracker
from typing import Any
from urllib.parse import urlsplit

from dpas.bench.sweep import unordered, workers
from dpas.errors import DpasError
from dpas.sweep.grid import Point
from dpas.sweep.run import Finished, run_point

#: how long joining a tcp:// scheduler may take before it is called unreachable
CONNECT_TIMEOUT_S = 3
#: a dask comm's first frame (its handshake) is a few hundred bytes; a larger declared size is
#: another service's bytes read as one (an SSH banner reads as exbibytes)
MAX_HANDSHAKE_BYTES = 1 << 20
#: how distributed's TCP comm prefixes a message: its byte count, a native uint64
FRAME_SIZE = struct.Struct("Q")
#: what a tcp:// --scheduler is
TCP_FORM = "expected local:N or tcp://HOST:PORT (PORT from 1 to 65535)"
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
    if text.startswith("tcp://"):
        host_port(text)
        return Scheduler("tcp", n, text)
    raise SchedulerError(f"--scheduler {text}: {TCP_FORM}")


def host_port(address: str) -> tuple[str, int]:
    """tcp://HOST:PORT's host and port (HOST a name, an IPv4 address or an [IPv6] one)."""
    refusal = SchedulerError(f"--scheduler {address}: {TCP_FORM}")
    try:
        parts = urlsplit(address)
        port = parts.port
    except ValueError:  # a port that is no number, an unclosed [IPv6
        raise refusal from None
    if not parts.hostname or port is None or not 1 <= port <= 65535:
        raise refusal
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise refusal
    return parts.hostname, port


def check_answers_as_dask(address: str) -> None:
    """Refuse a tcp:// address whose service is not a dask comm, before distributed trusts
    it: a dask scheduler sends its handshake on connect, one frame of a small declared size.
    Silence, a close, or an absurd size (another service's banner) is refused in one line."""
    host, port = host_port(address)
    refusal = f"--scheduler {address}: "
    try:
        with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S) as conn:
            head = _read_exactly(conn, FRAME_SIZE.size)
    except TimeoutError:
        raise SchedulerError(
            refusal + f"no dask handshake within {CONNECT_TIMEOUT_S} s; expected a dask scheduler"
        ) from None
    except OSError as err:
        raise SchedulerError(
            refusal + f"cannot connect ({' '.join(str(err.strerror or err).split())[:120]})"
        ) from None
    size = FRAME_SIZE.unpack(head)[0] if len(head) == FRAME_SIZE.size else 0
    if not 0 < size <= MAX_HANDSHAKE_BYTES:
        raise SchedulerError(refusal + "what answers is not a dask scheduler (no dask handshake)")


def _read_exactly(conn: socket.socket, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only where the peer closed first."""
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


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
        cluster = _deaf_to_ctrl_c(
            lambda: LocalCluster(
                n_workers=scheduler.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,  # a worker's warnings as it is closed on Ctrl-C
            )
        )
        return Client(cluster), cluster
    check_answers_as_dask(scheduler.address)
    try:
        return Client(scheduler.address, timeout=f"{CONNECT_TIMEOUT_S}s"), None
    except (OSError, TimeoutError) as err:
        raise SchedulerError(
            f"--scheduler {scheduler.address}: cannot connect within {CONNECT_TIMEOUT_S} s "
            f"({' '.join(str(err).split())[:120]})"
        ) from None


def _deaf_to_ctrl_c(start: Callable[[], Any]) -> Any:
    """``start()`` with SIGINT ignored, so the worker processes it spawns keep ignoring it
    (an ignored signal stays so across exec): Ctrl-C then reaches this process alone, which
    closes the cluster, and not every worker, each printing its own KeyboardInterrupt
    traceback. SIGINT is blocked meanwhile, so a Ctrl-C during the start stays pending (Linux
    never drops a blocked signal as ignored) and lands once Python's handler is back."""
    # multiprocessing starts its resource tracker with SIGINT blocked and then unblocks it: in
    # the window that would let a Ctrl-C land, ignored, and be lost; start it before
    resource_tracker.ensure_running()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    handler = signal.signal(signal.SIGINT, signal.SIG_IGN)
    started = None
    try:
        started = start()
    finally:
        signal.signal(signal.SIGINT, handler)
        try:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        except KeyboardInterrupt:  # the Ctrl-C held back while starting
            if started is not None:
                started.close()
            raise
    return started


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
