from collections.abc import Callable
from typing import Any

HIST_BITS: int
HIST_NR: int
LOG_SIZE: int
LOG_POLLED: int
LOG_SLEPT: int
LOG_FOUND_FIRST: int
LOG_BOUNDARY: int
NEVER: int

def run(
    run: dict[str, Any],
    policy: dict[str, int],
    should_stop: Callable[[], bool],
    marks: Callable[[str], None] | None = None,
) -> dict[str, Any]: ...
def replay(policy: dict[str, int], events: Any, ncpus: int) -> tuple[Any, Any, Any, Any]: ...
def bookkeeping(
    policy: dict[str, int],
    n: int,
    op: int,
    device_ns: bytes,
    late_ns: bytes,
    real_sleep: bool = False,
) -> dict[str, float]: ...
def pace(
    pattern: dict[str, int], end_ns: int, calls: list[tuple[int, int]]
) -> list[tuple[int, int, int, int, int]]: ...
