"""Workload files (TOML) and the built-ins, every value checked as read.

A file is a name, an optional runtime_s and source, and one ``[[group]]`` table per job
group (docs/workloads.md). A built-in is the same file shipped in dpas/workload/builtin/.
"""

from __future__ import annotations

import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from dpas.errors import DpasError, LimitError
from dpas.limits import BS_SECTOR, MAX_BS, MAX_JOBS, MAX_REAL_RUNTIME_S, runtime_range
from dpas.machine.fio import cpu_list
from dpas.policy import Op
from dpas.sizes import checked_size
from dpas.workload.model import STEADY, Group, Pattern, Role, Workload


class WorkloadError(DpasError, ValueError):
    """A workload file or name dpas cannot run, in one line naming the key."""


NAME = re.compile(r"[a-z][a-z0-9_-]{0,31}")
ZIPF = re.compile(r"zipf:([0-9]*\.?[0-9]+)")
MS = 1_000_000
S = 1_000_000_000
MAX_S = MAX_REAL_RUNTIME_S
#: key -> (kind, low, high, unit in ns or 1, what it is); kind: int or float
NUMBERS: dict[str, tuple[str, float, float, int]] = {
    "jobs": ("int", 1, MAX_JOBS, 1),
    "bs": ("int", BS_SECTOR, MAX_BS, 1),
    "rate_iops": ("int", 0, 10_000_000, 1),
    "think_us": ("float", 0, 1_000_000, 1000),
    "burst_ios": ("int", 0, 1_000_000, 1),
    "period_ms": ("float", 0, 3_600_000, MS),
    "start_s": ("float", 0, MAX_S, S),
    "stop_s": ("float", 0, MAX_S, S),
    "on_s": ("float", 0, MAX_S, S),
    "off_s": ("float", 0, MAX_S, S),
}
TEXTS = ("name", "role", "cpus", "rw", "offsets")
GROUP_KEYS = (*TEXTS, "pinned", *NUMBERS)
TOP_KEYS = ("name", "runtime_s", "source", "group")


def shipped() -> list[str]:
    """The built-in workloads' names (steady is bench.sh's run, no file)."""
    files = resources.files("dpas.workload").joinpath("builtin").iterdir()
    return [
        STEADY,
        *sorted(p.name.removesuffix(".toml") for p in files if p.name.endswith(".toml")),
    ]


def load(spec: str) -> Workload:
    """A built-in's name or a workload file's path."""
    if spec == STEADY:
        return Workload()
    if spec in shipped():
        text = resources.files("dpas.workload").joinpath(f"builtin/{spec}.toml").read_text()
        return parse(text, spec)
    path = Path(spec)
    if not path.suffix == ".toml" or not path.is_file():
        raise WorkloadError(
            f"--workload {spec!r}: expected a built-in ({', '.join(shipped())}) or a .toml file"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise WorkloadError(f"workload {path}: cannot be read ({err})") from None
    return parse(text, str(path))


def parse(text: str, where: str) -> Workload:
    """A workload file's text; WorkloadError naming the first bad key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise WorkloadError(f"workload {where}: {err}") from None
    except RecursionError:
        raise WorkloadError(f"workload {where}: nested too deeply to be a workload") from None
    _known(where, "", data, TOP_KEYS)
    name = _name(where, "", data.get("name"))
    tables = data.get("group")
    if not isinstance(tables, list) or not tables or not all(isinstance(t, dict) for t in tables):
        raise WorkloadError(f"workload {where}: expected one or more [[group]] tables")
    groups = tuple(_group(where, i, t) for i, t in enumerate(tables))
    _whole(where, groups)
    runtime = data.get("runtime_s")
    if runtime is not None:
        shortest = runtime_range()[0]  # a workload runs on any backend: the floor of all
        runtime = _number(where, "", "runtime_s", runtime, "float", shortest, MAX_S)
    source = data.get("source", "")
    if not isinstance(source, str):
        raise WorkloadError(f"workload {where}: source: expected a string")
    return Workload(name, groups, runtime, source)


def _known(where: str, at: str, table: dict[str, Any], keys: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise WorkloadError(
            f"workload {where}:{at} no key {unknown[0][:40]!r} (keys: {', '.join(keys)})"
        )


def _name(where: str, at: str, value: Any) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value) or value == STEADY:
        raise WorkloadError(
            f"workload {where}:{at} name = {str(value)[:40]!r}: expected a name of lower-case "
            "letters, digits, - and _ (up to 32), not 'steady'"
        )
    return value


def _number(where: str, at: str, key: str, value: Any, kind: str, low: float, high: float) -> Any:
    accepted = (
        f"expected {'a whole number' if kind == 'int' else 'a number'} from {low:g} to {high:g}"
    )
    types = (int,) if kind == "int" else (int, float)
    if isinstance(value, bool) or not isinstance(value, types) or not low <= value <= high:
        raise WorkloadError(f"workload {where}:{at} {key} = {str(value)[:40]}: {accepted}")
    return value


def _group(where: str, index: int, table: dict[str, Any]) -> Group:
    at = f" group {index + 1}"
    _known(where, at, table, GROUP_KEYS)
    name = _name(where, at, table.get("name"))
    at = f" group {name!r}"
    for key in TEXTS[1:]:
        if key in table and not isinstance(table[key], str):
            raise WorkloadError(f"workload {where}:{at} {key}: expected a string")
    role = table.get("role", "foreground")
    if role not in ("foreground", "background"):
        raise WorkloadError(
            f"workload {where}:{at} role = {role!r}: expected foreground or background"
        )
    cpus = table.get("cpus", "0")
    if cpus not in ("0", "split"):
        try:
            listed = cpu_list(cpus)
        except ValueError:
            listed = []
        if not listed or max(listed) >= MAX_JOBS:
            raise WorkloadError(
                f"workload {where}:{at} cpus = {cpus[:40]!r}: expected 0, split or a CPU list "
                "such as 0-3"
            )
    rw = table.get("rw", "read")
    if rw not in ("read", "write"):
        raise WorkloadError(f"workload {where}:{at} rw = {rw!r}: expected read or write")
    offsets = table.get("offsets", "uniform")
    theta = ZIPF.fullmatch(offsets)
    if offsets != "uniform" and (theta is None or not 0 < float(theta[1]) < 100):
        raise WorkloadError(
            f"workload {where}:{at} offsets = {offsets[:40]!r}: expected uniform or zipf:THETA "
            "(THETA above 0, below 100, as fio's random_distribution)"
        )
    pinned = table.get("pinned", True)
    if not isinstance(pinned, bool):
        raise WorkloadError(f"workload {where}:{at} pinned: expected true or false")
    n: dict[str, Any] = {}
    if isinstance(table.get("bs"), str):  # a size as fio writes one: "8k" (dpas.sizes)
        try:
            n["bs"] = checked_size("bs =", table["bs"], BS_SECTOR, MAX_BS, BS_SECTOR)
        except LimitError as err:
            raise WorkloadError(f"workload {where}:{at} {err}") from None
    for key, (kind, low, high, _) in NUMBERS.items():
        if key in table and key not in n:
            n[key] = _number(where, at, key, table[key], kind, low, high)
    if n.get("bs", BS_SECTOR) % BS_SECTOR:
        raise WorkloadError(
            f"workload {where}:{at} bs = {n['bs']}: expected whole 512-byte sectors"
        )
    pattern = _pattern(where, at, n)
    return Group(
        name,
        Role(role),
        n.get("jobs", 1),
        cpus,
        pinned,
        Op.READ if rw == "read" else Op.WRITE,
        n.get("bs", 4096),
        offsets,
        pattern,
    )


def _ns(n: dict[str, Any], key: str) -> int:
    return round(n.get(key, 0) * NUMBERS[key][3])


def _pattern(where: str, at: str, n: dict[str, Any]) -> Pattern:
    """The group's pattern: keys that go together are given together."""

    def refuse(why: str) -> WorkloadError:
        return WorkloadError(f"workload {where}:{at} {why}")

    if bool(n.get("burst_ios")) != bool(n.get("period_ms")):
        raise refuse("burst_ios and period_ms go together (I/Os at the start of each period)")
    if n.get("burst_ios") and n.get("rate_iops"):
        raise refuse("burst_ios and rate_iops: choose one way to pace the group")
    if ("on_s" in n) != ("off_s" in n) or n.get("on_s") == 0:
        raise refuse("on_s (above 0) and off_s go together: on for on_s, then off for off_s")
    pattern = Pattern(
        rate_iops=n.get("rate_iops", 0),
        think_ns=_ns(n, "think_us"),
        burst_ios=n.get("burst_ios", 0),
        period_ns=_ns(n, "period_ms"),
        start_ns=_ns(n, "start_s"),
        stop_ns=_ns(n, "stop_s"),
        on_ns=_ns(n, "on_s"),
        off_ns=_ns(n, "off_s"),
    )
    if pattern.stop_ns and pattern.stop_ns <= pattern.start_ns:
        raise refuse(f"stop_s = {n['stop_s']}: expected after start_s ({n.get('start_s', 0)})")
    return pattern


def _whole(where: str, groups: tuple[Group, ...]) -> None:
    names = [g.name for g in groups]
    twice = next((name for name in names if names.count(name) > 1), None)
    if twice:
        raise WorkloadError(f"workload {where}: two groups are named {twice!r}")
    if not any(g.foreground for g in groups):
        raise WorkloadError(f"workload {where}: expected a foreground group (role = foreground)")
    if sum(g.jobs for g in groups) > MAX_JOBS:
        raise WorkloadError(f"workload {where}: more than {MAX_JOBS} jobs in all")
