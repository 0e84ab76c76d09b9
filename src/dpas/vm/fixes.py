"""``--fix``: the edits that let the artifact's DPAS 5.18 tree run in a small TCG guest.

Four bugs stop the artifact's kernel (github DongDongJu/DPAS_FAST26, folder ``kernel/``,
5.18.0-rc6-dpas-fast26) in dpas's guest; docs/vm.md tells their symptoms. Two are the
artifact's own, found here by booting it; two are the lab's fixes for a virtual machine
(docs/rules.md, "What breaks DPAS in a virtual machine"):

- ``alloc``: the per-CPU switch state is allocated num_online_cpus() bytes per CPU instead of
  its size; the state is written past the allocation and a guest with fewer than 8 vCPUs panics
  seconds after boot.
- ``stats``: writing 1 to pas_enabled or ehp_enabled frees the queue's poll statistics callback
  and leaves the queue pointing at it; the next such write frees it again (an oops in
  blk_stat_remove_callback after any LHP or EHP run).
- ``buckets`` (the lab's fix 1): the statistics bucket read the sectors recorded only when the
  queue collects statistics, which QEMU's NVMe never does; DPAS never engages.
- ``yield`` (the lab's fix 3): a sleep shorter than the cost of arming a timer under QEMU never
  yields the CPU; the sleep loop always yields.

Each edit finds the artifact's text by a pattern in a copy of the tree (the build's work copy,
never the user's tree) and is refused in one line when the pattern is not there. An edit whose
result is already in the tree is not made again.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dpas.vm.kernel import VmError

#: the edit's mark in the source, so that a fixed tree says what changed it
MARK = "dpas --fix"
#: bump when an edit changes, so that builds with the old edit are not returned
FORMAT = 1


@dataclass(frozen=True, slots=True)
class Fix:
    """One source edit: in ``path``, every match of ``bug`` (``count`` of them) becomes
    ``fixed``; a tree where ``done`` matches has it already."""

    name: str
    path: str
    bug: re.Pattern[str]
    fixed: str
    done: re.Pattern[str]
    count: int
    #: what the unfixed kernel does, for the warning and the refusal
    symptom: str


FIXES = (
    Fix(
        "alloc",
        "block/blk-mq.c",
        re.compile(
            r"__alloc_percpu\(\s*num_online_cpus\(\)\s*,(\s*__alignof__\(struct blk_switch\)\));"
        ),
        r"__alloc_percpu(sizeof(struct blk_switch),\1; /* " + MARK + " alloc */",
        re.compile(r"__alloc_percpu\(\s*sizeof\(struct blk_switch\)"),
        1,
        "allocates the per-CPU switch state num_online_cpus() bytes per CPU: a guest with "
        "fewer than 8 vCPUs panics seconds after boot",
    ),
    Fix(
        "stats",
        "block/blk-sysfs.c",
        re.compile(
            r"if \(val == 1 && q->poll_stat\)\s*\{\s*if \(q->poll_stat\)\s*"
            r"blk_stat_remove_callback\(q, q->poll_cb\);\s*blk_stat_free_callback\(q->poll_cb\);"
            r"\s*\}"
        ),
        "/* " + MARK + " stats: the poll statistics stay on; freeing q->poll_cb here left\n"
        "\t * the queue pointing at it, and the next write freed it again */",
        re.compile(re.escape(MARK) + r" stats"),
        2,
        "frees the poll statistics on a write of 1 to pas_enabled or ehp_enabled and again on "
        "the next: an oops after any LHP or EHP run",
    ),
    Fix(
        "buckets",
        "block/blk-mq.c",
        re.compile(r"(\bsectors = )blk_rq_stats_sectors\(rq\);"),
        r"\1blk_rq_sectors(rq); /* " + MARK + " buckets */",
        re.compile(r"\bsectors = blk_rq_sectors\(rq\);"),
        1,
        "buckets I/Os by the sectors only a statistics-collecting queue records: under QEMU "
        "DPAS never engages (pas io: 0)",
    ),
    Fix(
        "yield",
        "block/blk-mq.c",
        re.compile(
            r"(hrtimer_sleeper_start_expires\(&hs, mode\);\n)(\s*)"
            r"if \(hs\.task\)\n\s*io_schedule\(\);"
        ),
        r"\1\2io_schedule(); /* " + MARK + " yield: always, even when the timer fired first */",
        re.compile(re.escape(MARK) + r" yield"),
        1,
        "never yields when arming the timer outlasts the sleep (QEMU): jobs sharing a CPU "
        "cannot run",
    ),
)
NAMES = tuple(fix.name for fix in FIXES)


def parse_fixes(text: str) -> tuple[str, ...]:
    """``--fix alloc,stats`` or ``--fix all`` as fix names in FIXES order; one-line errors."""
    names = [n.strip() for n in text.split(",")]
    if names == ["all"]:
        return NAMES
    unknown = [n for n in names if n not in NAMES]
    if unknown or not all(names):
        raise VmError(f"--fix {text}: expected all or a comma-separated list of {', '.join(NAMES)}")
    return tuple(n for n in NAMES if n in names)


def _read(tree: Path, fix: Fix) -> str:
    try:
        return (tree / fix.path).read_text(errors="surrogateescape")
    except OSError as err:
        raise VmError(
            f"--fix {fix.name}: {fix.path} cannot be read in the tree ({err.strerror}); "
            "--fix is for the artifact's DPAS 5.18 tree"
        ) from None


def unfixed(tree: Path) -> list[Fix]:
    """The fixes whose bug ``tree`` holds (a DPAS tree built without them)."""
    found = []
    for fix in FIXES:
        try:
            text = (tree / fix.path).read_text(errors="surrogateescape")
        except OSError:
            continue
        if fix.bug.search(text):
            found.append(fix)
    return found


def apply_fixes(tree: Path, names: tuple[str, ...]) -> list[str]:
    """Make the named edits in ``tree`` (a copy: each edited file is written anew, so a hard
    link to a kept source stays as it was). Returns a line per fix: made, or already there."""
    said = []
    for fix in (f for f in FIXES if f.name in names):
        text = _read(tree, fix)
        found = len(fix.bug.findall(text))
        if found == 0 and fix.done.search(text):
            said.append(f"--fix {fix.name}: already in {fix.path}")
            continue
        if found != fix.count:
            raise VmError(
                f"--fix {fix.name}: {fix.path} holds {found} of the {fix.count} place(s) this "
                f"fix edits ({fix.bug.pattern[:60]}...); --fix is for the artifact's DPAS "
                "5.18 tree"
            )
        target = tree / fix.path
        new = target.with_name(target.name + ".dpas-fix")
        new.write_text(fix.bug.sub(fix.fixed, text), errors="surrogateescape")
        os.chmod(new, target.stat().st_mode)
        os.replace(new, target)
        said.append(f"--fix {fix.name}: {fix.path} edited ({fix.count} place(s))")
    return said
