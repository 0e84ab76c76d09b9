"""A sweep's grid: a TOML file of settings, each a scalar or a list, expanded to points.

Every value is checked where it is read, in the ranges ``dpas bench`` enforces, so a grid of
hours never stops at its thousandth point on a typing mistake.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from dpas.errors import DpasError, LimitError
from dpas.limits import (
    BS_SECTOR,
    MAX_BS,
    MAX_IOS,
    MAX_JOBS,
    MAX_REPEATS,
    MAX_SEED,
    U32_MAX,
    checked,
    runtime_range,
)
from dpas.policy import BENCH_ORDER, Method, Op, Order
from dpas.policy.rules import RULE_SETS
from dpas.policy.switch import SwitchParams, param_error
from dpas.sim.profile import Profile
from dpas.sim.profile import load as load_profile
from dpas.sizes import checked_size
from dpas.workload import STEADY, Workload, WorkloadError
from dpas.workload import load as load_workload

#: a grid larger than this needs --yes: a typo in a list can make it years long
MAX_POINTS = 1_000_000
#: lists in lists a grid may hold: zip's [["jobs", "cpus"]]; anything deeper is no grid
MAX_NESTING = 2
#: the modes a point may name: the simulator runs all but HYB (io_uring's hybrid polling, the
#: kernel's, which it has no model of: a simulated HYB point is kept as refused)
MODES = tuple(m.value for m in BENCH_ORDER)


class GridError(DpasError):
    """A grid file that cannot be run: names the key and value, and what is accepted."""


@dataclass(frozen=True, slots=True)
class Point:
    """One run of the grid, every setting a field (plain values: it crosses to workers).

    ``target`` is where it runs: "sim" (the simulator), "vm" (the QEMU guest's polled drive)
    or a device or file. A setting the target does not read is None (``applies``), so a grid
    that varies it runs one real point, not copies of it."""

    target: str = "sim"
    profile: str | None = "qemu-lab"
    mode: str = "DPAS"
    jobs: int = 1
    cpus: str | None = "0"
    bs: int | None = 4096
    rw: str | None = "R"
    #: a workload (dpas.workload): a built-in's name or a .toml path; a non-steady one fixes
    #: the point's jobs (its foreground's) and leaves cpus, bs, rw and ios None (its groups)
    workload: str = "steady"
    #: simulated seconds; None when the run stops after ``ios`` I/Os
    runtime: float | None = 1.0
    ios: int | None = None
    seed: int | None = 1
    repeat: int = 1
    #: "auto" or pas_d_init in ns, as written
    d_init: str = "auto"
    adaptive: int | None = 1
    up: int | None = 10_000
    dn: int | None = 100_000
    param1: int = 0
    param2: int = 10
    param3: int = 10
    param4: int = 1
    param5: int = 100
    param6: int = 1000
    param7: int = 10000
    order: str | None = "kernel"
    rules: str | None = "lab"
    #: who completes a real point's I/Os: "fio" (the kernel's methods) or "dpas" (the engine)
    engine: str | None = None
    #: the guest's kernel (a ``dpas vm --kernel`` spec) of a "vm" point
    kernel: str | None = None

    @property
    def simulated(self) -> bool:
        return self.target == "sim"

    def key(self) -> str:
        """Every setting, name=value in field order: the same point always gives the same key
        (the dataset's resume test and the dask task's name)."""
        return ",".join(f"{k}={v}" for k, v in asdict(self).items())


SETTINGS = tuple(f.name for f in fields(Point))
#: what only the simulator reads; what the engine reads of it (fio reads neither); what only
#: a real point reads, and only the guest
SIM_ONLY = ("profile", "ios", "seed", "adaptive", "up", "dn", "order", "rules")
ENGINE_READS = ("seed", "order")
REAL_ONLY = ("engine", "kernel")
VM_ONLY = ("kernel",)
#: a real point's defaults for the settings only it reads
REAL_DEFAULTS = {"engine": "fio", "kernel": "debian"}
#: what a non-steady workload's groups say for themselves: given with one, an error
WORKLOAD_SAYS = ("jobs", "cpus", "bs", "rw", "ios")
#: keys of the file that are not settings of a point
GRID_KEYS = ("repeats", "zip")


def _whole(low: int, high: int) -> Callable[[str, Any], int]:
    def check(key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise GridError(f"{key} = {value!r}: expected a whole number from {low} to {high}")
        try:
            return int(checked(key, value, low, high, integer=True))
        except LimitError as err:
            raise GridError(str(err)) from None

    return check


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str, Any], str]:
    def check(key: str, value: Any) -> str:
        text = value.upper() if upper and isinstance(value, str) else value
        if not isinstance(text, str) or text not in options:
            raise GridError(f"{key} = {value!r}: expected one of {', '.join(options)}")
        return text

    return check


def _runtime(key: str, value: Any) -> float:
    """Seconds a run, in the range every target's backend takes (dpas.limits.runtime_range):
    one grid's runtime list crosses targets."""
    low, high = runtime_range()
    accepted = f"expected seconds from {low:g} to {high:g}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GridError(f"{key} = {value!r}: {accepted}")
    if not math.isfinite(value) or not low <= value <= high:
        raise GridError(f"{key} = {value!r}: {accepted}")
    return float(value)


def _bs(key: str, value: Any) -> int:
    """Bytes, or a size as fio writes one ("8k": dpas.sizes), in whole sectors."""
    if isinstance(value, str):
        try:
            return checked_size(f"{key} =", value, BS_SECTOR, MAX_BS, BS_SECTOR)
        except LimitError as err:
            raise GridError(str(err)) from None
    bs = _whole(BS_SECTOR, MAX_BS)(key, value)
    if bs % BS_SECTOR:
        raise GridError(
            f"{key} = {value!r}: expected a multiple of {BS_SECTOR} from {BS_SECTOR} to {MAX_BS}"
        )
    return bs


def _d_init(key: str, value: Any) -> str:
    if value == "auto":
        return "auto"
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= U32_MAX:
        raise GridError(f'{key} = {value!r}: expected "auto" or ns from 1 to {U32_MAX}')
    return str(value)


def _target(key: str, value: Any) -> str:
    """ "sim", "vm", or a device or file (found when the sweep starts, before any point)."""
    if (
        not isinstance(value, str)
        or not value.strip()
        or not value.isprintable()
        or len(value) > 4096
    ):
        raise GridError(f'{key} = {value!r}: expected "sim", "vm", or a device or file path')
    return value


def _kernel(key: str, value: Any) -> str:
    from dpas.vm.kernels import parse_kernel
    from dpas.vm.runner import VmError

    if not isinstance(value, str):
        raise GridError(f"{key} = {value!r}: expected a dpas vm --kernel spec such as debian")
    try:
        parse_kernel(value, None, ())
    except VmError as err:
        raise GridError(f"{key} = {value!r}: {err}") from None
    return value


def _profile(key: str, value: Any) -> str:
    from dpas.sim.profile import load

    if not isinstance(value, str):
        raise GridError(f"{key} = {value!r}: expected a shipped profile's name or a TOML path")
    load(value)  # a ProfileError (one line, exit 2) names what is wrong
    return value


@functools.lru_cache(maxsize=64)
def workload_of(spec: str) -> Workload:
    """Each process loads a workload once, not once a point."""
    return load_workload(spec)


@functools.lru_cache(maxsize=64)
def profile_of(spec: str) -> Profile:
    """Each process loads a profile once, not once a point."""
    return load_profile(spec)


def _workload(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise GridError(f"{key} = {value!r}: expected a built-in workload's name or a .toml path")
    try:
        workload_of(value)
    except WorkloadError as err:
        why = str(err).removeprefix(f"--workload {value!r}: ")
        raise GridError(f"{key} = {value!r}: {'; '.join(why.splitlines())}") from None
    return value


def _param(key: str, value: Any) -> int:
    why = param_error(key, value) if not isinstance(value, bool) else f"{value!r}: not a number"
    if why:
        raise GridError(f"{key} = {why}")
    return int(value)


CHECKS: dict[str, Callable[[str, Any], Any]] = {
    "target": _target,
    "profile": _profile,
    "mode": _choice(MODES, upper=True),
    "jobs": _whole(1, MAX_JOBS),
    "cpus": _choice(("0", "split")),
    "bs": _bs,
    "rw": _choice(("R", "W"), upper=True),
    "workload": _workload,
    "runtime": _runtime,
    "ios": _whole(1, MAX_IOS),
    "seed": _whole(0, MAX_SEED),
    "d_init": _d_init,
    "adaptive": _whole(0, 2),
    "up": _whole(0, U32_MAX),
    "dn": _whole(0, U32_MAX),
    **{f"param{i}": _param for i in range(1, 8)},
    "order": _choice(tuple(o.value for o in Order)),
    "rules": _choice(tuple(RULE_SETS)),
    "engine": _choice(("fio", "dpas")),
    "kernel": _kernel,
}


@dataclass(frozen=True, slots=True)
class Grid:
    """The expanded grid: its points (each once, in the file's order) and its text's hash."""

    points: list[Point]
    sha256: str
    text: str


def parse(text: str, where: str = "grid", yes: bool = False) -> Grid:
    """The points of a grid file's ``text``; GridError naming the key and value otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise GridError(f"{where}: not TOML: {err}") from None
    except RecursionError:  # tomllib recurses per [ or {: thousands deep overflow its stack
        raise _too_deep(where) from None
    if _nesting(data) > MAX_NESTING:
        raise _too_deep(where)
    axes = _axes(data)
    size = math.prod(len(values) for _, values in axes)
    if size == 0:
        raise GridError(f"{where}: an empty grid (a list with no values)")
    if size > MAX_POINTS and not yes:
        raise GridError(
            f"{where}: {size} points, more than {MAX_POINTS}: expected --yes to run them all"
        )
    points: dict[str, Point] = {}
    for combo in itertools.product(*(values for _, values in axes)):
        settings: dict[str, Any] = {}
        for (names, _), values in zip(axes, combo, strict=True):
            settings.update(zip(names, values, strict=True))
        point = _point(settings)
        points.setdefault(point.key(), point)
    return Grid(list(points.values()), hashlib.sha256(text.encode()).hexdigest(), text)


def _too_deep(where: str) -> GridError:
    return GridError(
        f"{where}: nested too deeply to be a grid (expected scalars, lists of them, and zip's "
        "lists of keys)"
    )


def _nesting(data: dict[str, Any]) -> int:
    """How deep lists and tables nest in a grid's values (1: a list of scalars), counted
    without recursion: a value thousands deep must not overflow the stack being measured."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(v, 0) for v in data.values()]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list | dict):
            deepest = max(deepest, depth + 1)
            if deepest > MAX_NESTING:
                break
            items = value.values() if isinstance(value, dict) else value
            stack += [(item, depth + 1) for item in items]
    return deepest


def _axes(data: dict[str, Any]) -> list[tuple[tuple[str, ...], list[tuple[Any, ...]]]]:
    """The grid's axes: a zip group is one axis of tuples, every other key one of its own;
    repeats N is the axis repeat 1..N. Each value checked here."""
    for key in data:
        if key not in CHECKS and key not in GRID_KEYS:
            raise GridError(f"{key}: unknown key; expected {', '.join([*CHECKS, *GRID_KEYS])}")
    if "runtime" in data and "ios" in data:
        raise GridError("runtime and ios: a run stops by one of them; expected only one")
    values = {key: _values(key, data[key]) for key in CHECKS if key in data}
    if "repeats" in data:
        repeats = _whole(1, MAX_REPEATS)("repeats", data["repeats"])
        values["repeat"] = list(range(1, repeats + 1))
    groups = _zip_groups(data.get("zip", []), values)
    tied = {name for group in groups for name in group}
    axes = [(group, list(zip(*(values[n] for n in group), strict=True))) for group in groups]
    axes += [((key,), [(v,) for v in vs]) for key, vs in values.items() if key not in tied]
    return axes


def _values(key: str, raw: Any) -> list[Any]:
    """A key's values, each checked: a scalar is a list of one."""
    items = raw if isinstance(raw, list) else [raw]
    return [CHECKS[key](key, item) for item in items]


def _zip_groups(raw: Any, values: dict[str, list[Any]]) -> list[tuple[str, ...]]:
    """zip = [["jobs", "cpus"], ...]: keys that advance together, each in one group, given in
    the grid, their lists of one length."""
    if not isinstance(raw, list) or not all(isinstance(g, list) for g in raw):
        raise GridError(f'zip = {raw!r}: expected a list of lists of keys, like [["jobs", "cpus"]]')
    groups: list[tuple[str, ...]] = []
    seen: set[str] = set()
    for group in raw:
        for name in group:
            if not isinstance(name, str):
                raise GridError(f"zip: {name!r} is not a key's name")
            if name == "repeats":
                name = "repeat"
            if name not in values:
                raise GridError(f"zip: {name!r} is not a key given in the grid")
            if name in seen:
                raise GridError(f"zip: {name!r} is in more than one group")
            seen.add(name)
        names = tuple("repeat" if n == "repeats" else n for n in group)
        lengths = {n: len(values[n]) for n in names}
        if len(set(lengths.values())) > 1:
            shown = ", ".join(f"{n} {k}" for n, k in lengths.items())
            raise GridError(f"zip {list(names)}: lists of unequal length ({shown})")
        if names:
            groups.append(names)
    return groups


def _point(settings: dict[str, Any]) -> Point:
    """One point; ios set means the run stops by its I/O count, not by time. A setting its
    target does not read is None (``applies``)."""
    target = settings.get("target", "sim")
    spec = settings.get("workload", STEADY)
    if spec != STEADY:
        said = [n for n in WORKLOAD_SAYS if n in settings]
        if said:
            raise GridError(
                f"{said[0]} and workload = {spec!r}: the workload's groups say it "
                "(docs/workloads.md); expected one of them"
            )
    if "ios" in settings:
        if target != "sim":
            raise GridError(
                f"ios: only the simulator stops a run by its I/O count; target {target!r} runs "
                "by runtime"
            )
        settings["runtime"] = None
    if target != "sim":
        settings = {**REAL_DEFAULTS, **settings}
    engine = settings.get("engine")
    point = replace(Point(), **settings)
    unread: dict[str, Any] = {n: None for n in SETTINGS if not applies(n, target, engine)}
    return settled(replace(point, **unread), given_runtime="runtime" in settings)


def settled(point: Point, given_runtime: bool = True) -> Point:
    """A point of a non-steady workload: its foreground's jobs, cpus, bs, rw and ios None
    (its groups say them), and the workload's own runtime_s where the grid gave none (as
    ``dpas bench --workload``). A steady point as it is."""
    if point.workload == STEADY:
        return point
    workload = workload_of(point.workload)
    if point.simulated and point.profile is not None:
        online = profile_of(point.profile).host.cpus
        if why := workload.beyond(online, f"profile {point.profile}"):
            raise GridError(f"workload = {point.workload!r}: {why}")
    runtime = point.runtime
    if not given_runtime and workload.runtime_s is not None:
        runtime = _runtime("runtime", workload.runtime_s)
    return replace(
        point, jobs=workload.foreground_jobs, cpus=None, bs=None, rw=None, ios=None, runtime=runtime
    )


def applies(name: str, target: str, engine: str | None) -> bool:
    """Whether a point on ``target`` (with ``engine``, for a real one) reads setting ``name``."""
    if target == "sim":
        return name not in REAL_ONLY
    if name in VM_ONLY and target != "vm":
        return False
    if name in SIM_ONLY:
        return engine == "dpas" and name in ENGINE_READS
    return True


def method(point: Point) -> Method:
    return Method.parse(point.mode)


# A workload's point has no cpus, bs or rw of its own (its groups say theirs): where a run
# needs one, it stands in as bench.sh's default.
def op(point: Point) -> Op:
    return Op.parse(point.rw or "R")


def cpus_of(point: Point) -> str:
    return point.cpus or "0"


def bs_of(point: Point) -> int:
    return point.bs or 4096


def switch(point: Point) -> SwitchParams:
    """The point's DPAS switch_param1..7."""
    return SwitchParams(**{f"param{i}": getattr(point, f"param{i}") for i in range(1, 8)})
