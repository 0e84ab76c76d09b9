"""The docs' measured and simulated numbers, written from where they come from.

Every table or figure in README.md and docs/*.md that shows numbers from a dpas run sits
between two HTML comments, ``<!-- make.py: NAME -->`` and ``<!-- end -->``; this script
writes each such block from committed result files (docs/data/), so a number on a page is
never typed by hand and never goes stale unnoticed:

    python docs/make.py            # rewrite every block from docs/data/
    python docs/make.py --check    # exit 1, listing the blocks that differ from docs/data/
    python docs/make.py --rerun    # first rerun every simulation into docs/data/ (about half
                                   # an hour on 2 cores) and draw docs/img's figures
    python docs/make.py --rerun tune figures   # only some: validate rules sizes macro tune figures

Simulated results are deterministic (each run's seed derives from seed 1), so ``--rerun``
gives the same files until the model changes; tests/test_docs_numbers.py checks the blocks
and recomputes the cheapest input, tests/test_fit.py reruns the grids the fit claims rest on.
docs/data/sizes-link-only.json is frozen: an earlier model's predictions, kept for comparison.

Measured runs (docs/data/guest-phases.json: a results.json with its machine, date and command;
the files benchmarks/*.py --save write through benchmarks/measured.py: guest-engine-vs-fio,
vm-times, sim-throughput, engine-overhead, sweep-sizing) are committed as they came and only
rendered: a timing is never rerun by this script.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from dpas.reports.validation import (
    CPU_TOLERANCE_PTS,
    IOPS_TOLERANCE_PCT,
    Cell,
    ErrorStats,
    Summary,
    cell_text,
    summary_line,
)
from dpas.reports.workload import SHARE_MODES

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "docs" / "data"
IMG = ROOT / "docs" / "img"
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
#: the pages' line width
WIDTH = 96
BLOCK = re.compile(
    r"(?P<head><!-- make\.py: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(?P<tail><!-- end -->)", re.S
)

#: the shipped profiles with a [published] table, in the order the docs show them
VALIDATE_PROFILES = ("optane-p5800x", "skhynix-p41", "samsung-983zet", "qemu-lab")
#: the paper's drives as the prose names them
DRIVE_NAMES = {"optane-p5800x": "Optane", "skhynix-p41": "SK hynix", "samsung-983zet": "Samsung"}
#: dpas validate's settings the docs quote (its defaults)
VALIDATE_RUNTIME_S, SEED = 1.0, 1
#: README's "Where the DPAS kernels differ": qemu-lab under both rule sets
RULES_MODES, RULES_JOBS = ("DPAS", "LHP"), (1, 2, 4, 16)
#: docs/profiles.md's block-size predictions
SIZES, SIZE_MODES = (4096, 8192, 16384, 32768, 65536, 131072), ("CP", "INT", "PAS", "DPAS")
#: a validate summary's error statistics
ERROR_KINDS = ("iops_fitted", "iops_predicted", "cpu_fitted", "cpu_predicted")
#: docs/sweep.md's tune example
TUNE_ARGS = ("--profile", "qemu-lab", "--jobs", "1,4", "--trials", "60", "--runtime", "0.2",
             "--seed", "1")  # fmt: skip
#: the figures drawn by dpas runs: file name (docs/img/NAME.png), the command (OUT: a fresh
#: folder), and the file of OUT it writes
FIGURE_COMMANDS = (
    ("sweep-heatmap", ("sweep", "examples/dpas-params.toml", "--heatmap", "param2,param3,iops",
                       "--out", "OUT"), "heatmap.png"),
    ("timeline-phases", ("bench", "INT", "CP", "PAS", "DPAS", "--workload", "phases",
                         "--baseline", "INT", "--timeline", "OUT/t.png", "--out", "OUT"), "t.png"),
)  # fmt: skip
#: docs/workloads.md's macro table: the modes beside INT
MACRO_MODES = ("CP", "LHP", "PAS", "DPAS")


# -- the data: committed results, and how to make them again ----------------------------------


def validate_data(
    profiles: tuple[str, ...] = VALIDATE_PROFILES, figures: bool = True
) -> dict[str, Any]:
    """``dpas validate`` on ``profiles`` as the docs quote it (1 s runs, seed 1): per profile
    its summary and cells, without the raw records; the Optane figure copied to docs/img."""
    from dpas.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        args = ["validate", "--runtime", str(VALIDATE_RUNTIME_S), "--seed", str(SEED)]
        main([*args, *(a for p in profiles for a in ("--profile", p)), "--out", str(out)])
        doc = json.loads((out / "validate.json").read_text())
        if figures and (out / "optane-p5800x.png").exists():
            shutil.copyfile(out / "optane-p5800x.png", IMG / "validate-optane-p5800x.png")
    return validate_compact([doc])


def validate_compact(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """validate.json files as docs/data keeps them: per profile its summary and cells, and
    the run's settings, without the raw records (megabytes the docs never print)."""
    keep = ("name", "role", "published", "summary", "cells", "d_init_ns")
    return {
        "what": f"dpas validate --runtime {VALIDATE_RUNTIME_S:g} --seed {SEED}, "
        "per shipped profile with a [published] table (docs/make.py --rerun validate)",
        "profiles": {p["name"]: {k: p[k] for k in keep} for d in docs for p in d["profiles"]},
    }


def rules_data() -> dict[str, Any]:
    """``dpas bench DPAS LHP --jobs 1,2,4,16`` on qemu-lab (1 s, seed 1) under the lab's and
    the artifact's rules: IOPS, CPU % and the DPAS breakdown per rule set, mode and jobs."""
    from dpas.bench.backend import Sweep
    from dpas.bench.sweep import SimulatorBackend
    from dpas.policy import RULE_SETS, Method
    from dpas.sim import load

    backend = SimulatorBackend(load("qemu-lab"))
    rows: dict[str, Any] = {}
    for name in ("lab", "artifact"):
        sweep = Sweep(
            modes=tuple(Method(m) for m in RULES_MODES), jobs=RULES_JOBS, runtime_s=1.0,
            seed=SEED, rules=RULE_SETS[name],
        )  # fmt: skip
        outcome = backend.run(sweep, lambda _: None)
        rows[name] = [
            {
                "mode": r.mode,
                "jobs": r.jobs,
                "iops": r.iops,
                "cpu_pct": r.cpu_pct,
                "breakdown": r.breakdown,
            }  # fmt: skip
            for r in outcome.records
        ]
    return {"what": "dpas bench DPAS LHP --jobs 1,2,4,16 --rules lab|artifact (qemu-lab)", **rows}


def bench_records(args: list[str]) -> list[dict[str, Any]]:
    """``dpas bench ARGS`` on the simulator, as the command runs it: results.json's records."""
    from dpas.cli import main

    with tempfile.TemporaryDirectory() as tmp:
        main(["bench", *args, "--seed", str(SEED), "--out", tmp])
        records: list[dict[str, Any]] = json.loads((Path(tmp) / "results.json").read_text())[
            "records"
        ]
    return records


def sizes_data() -> dict[str, Any]:
    """docs/profiles.md's block sizes: CP, INT, PAS and DPAS at one job, 0.5 s, per paper
    drive and size: the IOPS."""
    rows = []
    for profile in DRIVE_NAMES:
        for bs in SIZES:
            args = [*SIZE_MODES, "--profile", profile, "--jobs", "1", "--bs", str(bs)]
            for r in bench_records([*args, "--runtime", "0.5"]):
                rows.append({"profile": profile, "bs": bs, "mode": r["mode"], "iops": r["iops"]})
    return {
        "what": "dpas bench CP INT PAS DPAS --profile P --jobs 1 --bs BS --runtime 0.5",
        "rows": rows,
    }


def macro_data() -> dict[str, Any]:
    """docs/workloads.md's macro table: ``dpas bench ALL --workload macro --baseline INT`` per
    paper drive: each mode against INT, and DPAS's mode shares."""
    from dpas.reports.workload import baseline_record

    found: dict[str, Any] = {}
    for profile in DRIVE_NAMES:
        records = bench_records(["ALL", "--workload", "macro", "--profile", profile])
        shares = next(r["mode_share"] for r in records if r["mode"] == "DPAS")
        found[profile] = {"baseline": baseline_record(records, "INT"), "dpas_mode_share": shares}
    return {"what": "dpas bench ALL --workload macro --profile P --baseline INT", **found}


def tune_data() -> dict[str, Any]:
    """docs/sweep.md's tune example (``TUNE_ARGS``): the best trial against the defaults
    (trial 0, the enqueued baseline) per job count; its front figure to docs/img."""
    from dpas.cli import main
    from dpas.sweep.dataset import read

    with tempfile.TemporaryDirectory() as tmp:
        main(["tune", *TUNE_ARGS, "--out", tmp])
        doc = json.loads((Path(tmp) / "tune.json").read_text())
        rows = read(Path(tmp) / "trials")
        shutil.copyfile(Path(tmp) / "front.png", IMG / "tune-front.png")
    best = doc["best"]["trial"]
    picked = [
        {"trial": r["trial"], "jobs": r["jobs"], "iops": r["iops"], "cpu_pct": r["cpu_pct"]}
        for r in rows
        if r["trial"] in (0, best)
    ]
    return {
        "what": "dpas tune " + " ".join(TUNE_ARGS),
        **{k: doc[k] for k in ("config", "best", "defaults", "published")},
        "rows": sorted(picked, key=lambda r: (r["trial"], r["jobs"])),
    }


def figures_data() -> dict[str, Any]:
    """The README's and docs' figures that come from dpas runs and have no numbers on the
    pages: written to docs/img; the data file says which command drew each."""
    from dpas.cli import main

    made = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, args, drawn in FIGURE_COMMANDS:
            out = Path(tmp) / name
            main([*(a.replace("OUT", str(out)) for a in args)])
            shutil.copyfile(out / drawn, IMG / f"{name}.png")
            made[f"{name}.png"] = "dpas " + " ".join(args)
    return {"what": "the figures docs/make.py --rerun figures draws", "figures": made}


#: each committed data file and the function that makes it again
MAKERS: dict[str, Callable[[], dict[str, Any]]] = {
    "validate": validate_data,
    "rules": rules_data,
    "sizes": sizes_data,
    "macro": macro_data,
    "tune": tune_data,
    "figures": figures_data,
}
#: what no rerun can make again: the link-only size model's predictions, before the layout
#: model replaced it (kIOPS at one job, as docs/profiles.md printed them then), and runs
#: measured in a guest or on the host (each file names its machine, date and command)
FROZEN = (
    "sizes-link-only",
    "guest-phases",
    "guest-engine-vs-fio",
    "vm-times",
    "sim-throughput",
    "engine-overhead",
    "sweep-sizing",
)


def load_data(name: str) -> dict[str, Any]:
    """A committed data file, docs/data/NAME.json."""
    data: dict[str, Any] = json.loads((DATA / f"{name}.json").read_text())
    return data


def save_data(name: str, data: dict[str, Any]) -> None:
    """docs/data/NAME.json, stable: sorted keys, one run per line where it can."""
    DATA.mkdir(exist_ok=True)
    (DATA / f"{name}.json").write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


# -- the blocks ---------------------------------------------------------------------------------


def cells(profile: dict[str, Any]) -> list[Cell]:
    """A profile's validate cells, read back from the committed records."""
    return [Cell(**c) for c in profile["cells"]]


def out_of_bar(cell: Cell) -> list[str]:
    """What puts a cell beyond validate's bar (5% IOPS, 5 CPU points), as words."""
    out = []
    if cell.iops_error_pct is not None and abs(cell.iops_error_pct) > IOPS_TOLERANCE_PCT:
        out.append(f"IOPS {cell.iops_error_pct:+.1f}%")
    if cell.cpu_error_pts is not None and abs(cell.cpu_error_pts) > CPU_TOLERANCE_PTS:
        out.append(f"CPU {cell.cpu_error_pts:+.1f} points")
    return out


def grid_text(profile: dict[str, Any]) -> str:
    """A profile's validate grid as README shows it: per mode an IOPS line (thousands,
    model/published, error, ``*`` fitted) and a CPU line (model/published, error in points)."""
    grid = cells(profile)
    jobs = sorted({c.jobs for c in grid})
    modes = list(dict.fromkeys(c.mode for c in grid))
    by = {(c.mode, c.jobs): c for c in grid}
    width = 19

    def iops(c: Cell) -> str:
        error = "" if c.iops_error_pct is None else f"{c.iops_error_pct:+5.1f}%"
        return f"{c.model_kiops:5.1f}/{_num(c.published_kiops)} {error}{'*' if c.fitted else ' '}"

    def cpu(c: Cell) -> str:
        error = "" if c.cpu_error_pts is None else f"{c.cpu_error_pts:+5.1f}"
        return f"{c.model_cpu_pct:5.1f}/{_num(c.published_cpu_pct)} {error}"

    head = "mode  " + " ".join(f"{j} job{'s' if j > 1 else ''}".ljust(width) for j in jobs)
    lines = [head.rstrip()]
    for mode in modes:
        lines.append(
            (f"{mode:<6}" + " ".join(iops(by[mode, j]).ljust(width) for j in jobs)).rstrip()
        )
        lines.append(("      " + " ".join(cpu(by[mode, j]).ljust(width) for j in jobs)).rstrip())
    return "```\n" + "\n".join(lines) + "\n```\n"


def _num(value: float | None) -> str:
    return "  -  " if value is None else f"{value:5.1f}"


def optane_grid(data: dict[str, dict[str, Any]]) -> str:
    """README: the Optane P5800X's grid, with the count of fitted and predicted cells."""
    profile = data["validate"]["profiles"]["optane-p5800x"]
    grid = cells(profile)
    fitted = sum(c.fitted for c in grid)
    return (
        wrapped(
            "The Optane P5800X, IOPS in thousands and CPU %, model/published (`*`: one of the "
            f"{fitted} cells fitted; the {len(grid) - fitted} others are predictions):"
        )
        + "\n"
        + grid_text(profile)
    )


def fit_claim(data: dict[str, dict[str, Any]]) -> str:
    """README: the worst and mean IOPS error of the Optane and SK hynix grids, the cells
    within the bar, and the cells beyond it."""
    profiles = data["validate"]["profiles"]
    paper = [profiles[p] for p in ("optane-p5800x", "skhynix-p41")]
    grid = [c for p in paper for c in cells(p)]
    errors = [abs(c.iops_error_pct) for c in grid if c.iops_error_pct is not None]
    means = [_mean(p["summary"]) for p in paper]
    within = sum(p["summary"]["within"] for p in paper)
    compared = sum(p["summary"]["cells"] for p in paper)
    samsung = profiles["samsung-983zet"]["summary"]
    samsung_text = (
        "the Samsung drive's two published cells too"
        if samsung["within"] == samsung["cells"]
        else f"the Samsung drive: {samsung['within']} of {samsung['cells']}"
    )
    return wrapped(
        f"Every IOPS cell of the Optane and SK hynix tables is within {max(errors):.1f}% "
        f"(mean {min(means):.1f}-{max(means):.1f}%); {within} of their {compared} cells are "
        f"within 5% IOPS and 5 CPU points ({samsung_text}). Beyond that bar: {_beyond(profiles)}."
    )


def wrapped(text: str) -> str:
    """A paragraph at the pages' width."""
    return textwrap.fill(text, width=WIDTH, break_on_hyphens=False) + "\n"


def framed(head: str, lines: list[str], tail: str = "") -> str:
    """A block of a sentence, a table and a closing paragraph, the prose wrapped to the page."""
    return wrapped(head) + "\n" + "\n".join(lines) + "\n" + ("\n" + wrapped(tail) if tail else "")


def _mean(summary: dict[str, Any]) -> float:
    """The mean |IOPS error| over every cell of a summary, fitted and predicted together."""
    parts = [summary["iops_fitted"], summary["iops_predicted"]]
    total = sum(p["mean_abs"] * p["cells"] for p in parts if p["cells"])
    return float(total / sum(p["cells"] for p in parts))


def _beyond(profiles: dict[str, Any]) -> str:
    """The paper's cells beyond the bar: "Optane DPAS x20 (CPU +19.3 points), ..."."""
    found = [
        f"{DRIVE_NAMES[name]} {c.mode} x{c.jobs} ({', '.join(out_of_bar(c))})"
        for name in DRIVE_NAMES
        for c in cells(profiles[name])
        if out_of_bar(c)
    ]
    return "; ".join(found) if found else "none"


def fit_table(data: dict[str, dict[str, Any]]) -> str:
    """docs/profiles.md: per paper drive, the IOPS and CPU errors, fitted / predicted, the
    worst prediction and the cells within the bar."""
    profiles = data["validate"]["profiles"]
    lines = [
        "| drive | IOPS mean \\|error\\| | worst predicted | CPU mean \\|error\\| | "
        "worst predicted | within 5% and 5 pts |",
        "|---|---|---|---|---|---|",
    ]
    for name in DRIVE_NAMES:
        summary, grid = profiles[name]["summary"], cells(profiles[name])
        lines.append(
            f"| {name} | {_pair(summary, 'iops', '%')} | {_worst(grid, 'iops_error_pct', '%')} "
            f"| {_pair(summary, 'cpu', ' pts')} | {_worst(grid, 'cpu_error_pts', ' pts')} "
            f"| {summary['within']} of {summary['cells']} |"
        )
    beyond = f"Cells beyond the bar (5% IOPS, 5 CPU points): {_beyond(profiles)}."
    return "\n".join(lines) + "\n\n" + wrapped(beyond)


def _pair(summary: dict[str, Any], kind: str, unit: str) -> str:
    """ "1.6% / 0.9%": the mean |error| of the fitted cells / of the predicted ones."""
    fitted, predicted = summary[f"{kind}_fitted"], summary[f"{kind}_predicted"]
    if not fitted["cells"] and not predicted["cells"]:
        return "not published"
    return " / ".join(
        "-" if not s["cells"] else f"{s['mean_abs']:.1f}{unit}" for s in (fitted, predicted)
    )


def _worst(grid: list[Cell], field: str, unit: str) -> str:
    """The predicted cell with the largest |error|: "19.3 pts (DPAS x20)"."""
    found = [c for c in grid if not c.fitted and getattr(c, field) is not None]
    if not found:
        return ""
    worst = max(found, key=lambda c: abs(getattr(c, field)))
    return f"{abs(getattr(worst, field)):.1f}{unit} ({worst.mode} x{worst.jobs})"


def qemu_lab_summary(data: dict[str, dict[str, Any]]) -> str:
    """docs/validate.md: qemu-lab's summary line, as dpas validate prints it."""
    return "```\n" + summary_text(data["validate"]["profiles"]["qemu-lab"]) + "\n```\n"


def summary_text(profile: dict[str, Any]) -> str:
    """A profile's summary line, as dpas validate prints it, from its committed summary."""
    found = profile["summary"]
    stats = {k: ErrorStats(**found[k]) for k in ERROR_KINDS}
    return summary_line(Summary(**{**found, **stats}))


def lab_fit(data: dict[str, dict[str, Any]]) -> str:
    """docs/bench.md: qemu-lab's validate grid (the lab publishes IOPS only), its summary line
    and one DPAS job's CP:PAS split."""
    profile = data["validate"]["profiles"]["qemu-lab"]
    one = next(r for r in data["rules"]["lab"] if (r["mode"], r["jobs"]) == ("DPAS", 1))
    split = one["breakdown"]["cp"] / one["breakdown"]["pas"]
    return (
        grid_text(profile)
        + "\n"
        + wrapped(
            f"{summary_text(profile)}. One DPAS job's CP:PAS split: {split:.1f}:1 "
            "(`dpas bench DPAS --jobs 1`)."
        )
    )


def cell_example(data: dict[str, dict[str, Any]]) -> str:
    """docs/validate.md: one cell as dpas validate prints it (the Optane's CP at one job)."""
    record = next(
        c
        for c in data["validate"]["profiles"]["optane-p5800x"]["cells"]
        if (c["mode"], c["jobs"]) == ("CP", 1)
    )
    text = re.sub(r"\[/?\w+\]", "", cell_text(Cell(**record)))  # no colours
    return "```\n" + text + "\n```\n"


def rules_table(data: dict[str, dict[str, Any]]) -> str:
    """README: DPAS and LHP on the simulated lab under both rule sets, with DPAS's breakdown."""
    from dpas.results import BREAKDOWN

    rules = data["rules"]
    head = (
        "| IOPS (cpu%) | "
        + " | ".join(f"jobs {j}" if i == 0 else str(j) for i, j in enumerate(RULES_JOBS))
        + " | DPAS breakdown, 1 job |"
    )
    lines = [head, "|" + "---|" * (len(RULES_JOBS) + 2)]
    for mode in RULES_MODES:
        for name in ("lab", "artifact"):
            rows = {r["jobs"]: r for r in rules[name] if r["mode"] == mode}
            values = " | ".join(
                f"{rows[j]['iops']:.0f} ({rows[j]['cpu_pct']:.1f})" for j in RULES_JOBS
            )
            bd = rows[RULES_JOBS[0]]["breakdown"]
            bd_text = " ".join(f"{k}:{bd[k]}" for k in BREAKDOWN) if bd else ""
            lines.append(f"| {mode}, {name} | {values} | {bd_text} |".replace("|  |", "| |"))
    return "\n".join(lines) + "\n"


def sizes_table(data: dict[str, dict[str, Any]]) -> str:
    """docs/profiles.md: kIOPS per drive, mode and block size, the link-only model's beside
    them from 8 KiB on."""
    iops = {(r["profile"], r["mode"], r["bs"]): r["iops"] for r in data["sizes"]["rows"]}
    before = data["sizes-link-only"]["kiops"]
    names = [f"{bs // 1024} KiB" for bs in SIZES]
    lines = ["| drive | mode | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(SIZES)]
    for profile in DRIVE_NAMES:
        for mode in SIZE_MODES:
            cells = []
            for bs in SIZES:
                text = f"{iops[profile, mode, bs] / 1000:.1f}"
                old = before.get(profile, {}).get(mode, {}).get(str(bs))
                cells.append(text if old is None else f"{text} ({old:.1f})")
            lines.append(f"| {profile} | {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def macro_table(data: dict[str, dict[str, Any]]) -> str:
    """docs/workloads.md: per drive, each mode's foreground IOPS / CPU % as a percentage of
    INT's, and DPAS's mode shares."""
    lines = [
        "| profile | " + " | ".join(MACRO_MODES) + " | DPAS's modes |",
        "|---|" + "---|" * (len(MACRO_MODES) + 1),
    ]
    for profile in DRIVE_NAMES:
        found = data["macro"][profile]
        rows = {r["mode"]: r for r in found["baseline"]}
        rel = [f"{rows[m]['iops_rel']:.0f} / {rows[m]['cpu_pct_rel']:.0f}" for m in MACRO_MODES]
        shares = sorted(found["dpas_mode_share"].items(), key=lambda kv: -kv[1])
        modes = ", ".join(f"{m} {100 * s:.0f}%" for m, s in shares if round(100 * s) > 0)
        lines.append(f"| {profile} | " + " | ".join(rel) + f" | {modes} |")
    return "\n".join(lines) + "\n"


def tune_example(data: dict[str, dict[str, Any]]) -> str:
    """docs/sweep.md: the tune example's best trial against the defaults, per job count."""
    tune = data["tune"]
    best, defaults = tune["best"], tune["defaults"]
    gain = 100 * (best["objective"] / defaults["objective"] - 1)
    same = tune["published"] is not None and tune["published"]["objective"] == defaults["objective"]
    settings = ", ".join(f"{k} {v}" for k, v in best["settings"].items() if k != "order")
    config = tune["config"]
    per_jobs = []
    for jobs in config["jobs"]:
        mine, base = (
            next(r for r in tune["rows"] if (r["trial"], r["jobs"]) == (t, jobs))
            for t in (best["trial"], 0)
        )
        per_jobs.append(
            f"at {jobs} job{'s' if jobs > 1 else ''} {mine['iops'] / 1000:.1f}k IOPS at "
            f"{mine['cpu_pct']:.1f}% CPU (the defaults: {base['iops'] / 1000:.1f}k at "
            f"{base['cpu_pct']:.1f}%)"
        )
    return wrapped(
        f"On {config['profile']}, `{' '.join(TUNE_ARGS[2:6])}` (runtime {config['runtime']:g} s, "
        f"seed {config['seed']}, batch {config['batch']}): {config['objective']} "
        f"{best['objective']:,.0f} against {defaults['objective']:,.0f} for the defaults "
        f"({gain:+.1f}%"
        + ("; the lab's published settings are the defaults" if same else "")
        + f"). The best (trial {best['trial']}: {settings}): "
        + "; ".join(per_jobs)
        + "."
    )


def guest_phases(data: dict[str, dict[str, Any]]) -> str:
    """docs/workloads.md: the phases workload measured in a guest (a committed results.json
    with the machine and date it was measured on): each group's measures, DPAS's mode shares."""
    guest = data["guest-phases"]
    results = guest["results"]
    head = (
        f"`{guest['command']}` on {guest['machine']}, {guest['date']}: guest kernel "
        f"{results['kernel']}, {results['accelerator'].upper()}, one run each:"
    )
    lines = [
        "| mode | qd1 IOPS | qd1 mean / p99 µs | crowd IOPS | host CPU % |",
        "|---|---|---|---|---|",
    ]
    shares = ""
    for record in results["records"]:
        groups = {g["name"]: g for g in record["groups"]}
        qd1, crowd = groups["qd1"], groups["crowd"]
        lines.append(
            f"| {record['mode']} | {qd1['iops']:.0f} | {qd1['lat_mean_us']:.0f} / "
            f"{qd1['lat_p99_us']:.0f} | {crowd['iops']:.0f} | {record['host_cpu_pct']:.1f} |"
        )
        if record.get("mode_share"):
            found = record["mode_share"]
            shares = ", ".join(
                f"{m} {100 * found[m]:.0f}%" if found[m] else f"{m} never" for m in SHARE_MODES
            )
    return framed(head, lines, f"DPAS's CPU 0 was {shares}.")


def machine_text(found: dict[str, Any]) -> str:
    """A measured file's machine and date: "2 cores, Debian GNU/Linux 12 (bookworm), kernel
    6.1.0, QEMU emulator version 7.2.x, load average 0.5/0.4/0.3, 2026-12-06"."""
    m = found["machine"]
    load = "/".join(f"{x:.1f}" for x in m["load_average"])
    return (
        f"{m['cores']} cores, {m['os']}, kernel {m['kernel']}, {m['qemu'] or 'no QEMU'}, "
        f"load average {load} at the end, {found['date']}"
    )


def _spread(values: list[float]) -> str:
    """ "7437 ± 668 (6685-8185)": mean, standard deviation, min-max."""
    from statistics import mean, stdev

    sd = stdev(values) if len(values) > 1 else 0.0
    return f"{mean(values):.0f} ± {sd:.0f} ({min(values):.0f}-{max(values):.0f})"


def guest_engine_vs_fio(data: dict[str, dict[str, Any]]) -> str:
    """docs/engine.md: benchmarks/engine_vs_fio.py --compare dpas-cp in one TCG guest boot:
    fio's and the engine's CP, DPAS's IOPS per round against CP's, the logged PAS's p99, and
    DPAS's latency split into the I/Os that took CP's path and those that slept."""
    from statistics import mean

    found = data["guest-engine-vs-fio"]
    res = found["results"]
    rows = res["rounds"]

    def iops(name: str) -> list[float]:
        return [float(v["iops"]) for v in rows[name]]

    def ratios(a: str, b: str, key: str = "iops") -> list[float]:
        return [x[key] / y[key] for x, y in zip(rows[a], rows[b], strict=True)]

    dpas, cp, fio = "engine DPAS x1 guide", "engine CP x1", "fio CP x1"
    share = mean(v["cp_share"] for v in rows[dpas])
    per_round = ratios(dpas, cp)
    vs_fio = ratios(cp, fio)
    p99 = ratios("engine PAS x1 logged", "engine PAS x1", "p99")
    column = res["kernel_spec"]
    lines = [
        f"| run | {column} |",
        "|---|---|",
        f"| fio io_uring hipri (CP) | {_spread(iops(fio))} |",
        f"| engine CP | {_spread(iops(cp))} |",
        f"| engine DPAS, guide's order ({share:.0%} in CP) | {_spread(iops(dpas))} |",
        f"| DPAS / CP per round, mean (range) | {mean(per_round):.2f} "
        f"({min(per_round):.2f}-{max(per_round):.2f}) |",
        f"| engine PAS, logged / unlogged p99, mean | {mean(p99):.2f} |",
    ]
    head = (
        f"`{found['command']}` on {machine_text(found)}: guest kernel {res['guest_kernel']}, "
        f"{res['accelerator'].upper()}, {len(per_round)} rounds of {res['runtime_s']:g} s runs "
        "(IOPS mean ± standard deviation, min-max):"
    )
    lat = {k: mean(v[k] for v in rows[dpas] if k in v) for k in ("lat_unslept", "lat_slept")}
    tail = (
        f"DPAS's I/Os that took CP's path averaged {lat['lat_unslept']:.0f} us against CP's "
        f"{mean(v['lat'] for v in rows[cp]):.0f} us, its sleeping ones {lat['lat_slept']:.0f} us; "
        f"the engine's CP was {mean(vs_fio):.2f}x fio's io_uring CP "
        f"({min(vs_fio):.2f}-{max(vs_fio):.2f} per round)."
    )
    return framed(head, lines, tail)


def vm_times(data: dict[str, dict[str, Any]]) -> str:
    """docs/vm.md: benchmarks/vm_times.py: per --kernel spec, what a cold run fetched, the cold
    and warm times of ``dpas vm bench INT CP --jobs 1 --runtime 2``, and the guest kernel."""
    found = data["vm-times"]
    lines = ["| `--kernel` | fetched | cold | warm | guest kernel |", "|---|---|---|---|---|"]
    for row in found["results"]:
        fetched = row["fetched"]
        packages = fetched["packages"]
        what = (
            f"{sum(p['mb'] for p in packages):.0f} MB ({len(packages)} package"
            f"{'s' if len(packages) > 1 else ''})"
            if packages
            else "none"
        )
        if fetched["lists_bytes"]:
            what += f" + {fetched['lists_bytes'] / 1e6:.1f} MB lists"
        times = [
            f"{row[k]['seconds']:.1f} s" + ("" if row[k]["returncode"] == 0 else " (failed)")
            for k in ("cold", "warm")
        ]
        lines.append(
            f"| `{row['spec']}` | {what} | {times[0]} | {times[1]} | {row['warm']['kernel']} |"
        )
    return framed(f"On {machine_text(found)} (`{found['command']}`):", lines)


def _median_of(runs: list[dict[str, Any]], key: str) -> float:
    from statistics import median

    return float(median(r[key] for r in runs))


#: docs/bench.md's throughput table: the profiles' labels by how their jobs were placed
PLACED = {"0": "CPU 0", "split": "split"}


def _sim_rates(found: dict[str, Any]) -> dict[tuple[str, str, int], dict[str, tuple[float, float]]]:
    """(profile, cpus, jobs) -> mode -> (compiled, pure) simulated I/Os per wall second, each
    from the median of its rounds' wall times."""
    from statistics import median

    rates: dict[tuple[str, str, int], dict[str, tuple[float, float]]] = {}
    for case in found["results"]["cases"]:
        key = (case["profile"], case["cpus"], case["jobs"])
        rates.setdefault(key, {})[case["mode"]] = (
            case["ios"] / median(case["compiled_wall_s"]),
            case["ios"] / median(case["pure_wall_s"]),
        )
    return rates


def sim_throughput(data: dict[str, dict[str, Any]]) -> str:
    """docs/bench.md: benchmarks/sim_throughput.py --save: simulated I/Os per wall second,
    compiled, per profile, job count and mode; the ratio to CPython; the peak memory."""
    from statistics import mean

    found = data["sim-throughput"]
    rates = _sim_rates(found)
    modes = list(next(iter(rates.values())))
    lines = [f"| profile | jobs | {' | '.join(modes)} |", "|---|---|" + "---|" * len(modes)]
    for (profile, cpus, jobs), by_mode in rates.items():
        cols = " | ".join(f"{by_mode[m][0] / 1000:.0f}k" for m in modes)
        lines.append(f"| {profile} ({PLACED.get(cpus, cpus)}) | {jobs} | {cols} |")
    ratios = [c / p for by_mode in rates.values() for c, p in by_mode.values()]
    pure = [p for by_mode in rates.values() for _, p in by_mode.values()]
    rounds = len(found["results"]["cases"][0]["compiled_wall_s"])
    peak = found["results"]["peak_rss"]
    head = (
        f"Measured on {machine_text(found)} (`{found['command']}`), simulated I/Os per wall "
        f"second, compiled, from the median of {rounds} rounds:"
    )
    tail = (
        f"The same runs in CPython made {min(pure) / 1000:.0f}k-{max(pure) / 1000:.0f}k a "
        f"second: the compiled simulator runs {min(ratios):.1f} to {max(ratios):.1f} times as "
        f"many simulated I/Os per wall second (mean {mean(ratios):.1f}). A {peak['jobs']}-job, "
        f"{peak['runtime_s']:g} s {peak['profile']} run ({peak['mode']}, {peak['ios']:,} I/Os, "
        f"{peak['events']:,} events) peaks at {peak['maxrss_kib'] / 1024:.0f} MiB."
    )
    return framed(head, lines, tail)


def engine_overhead(data: dict[str, dict[str, Any]]) -> str:
    """docs/engine.md: benchmarks/engine_overhead.py --save: the hot loop's ns per I/O per mode
    (median, min-max of the rounds), what a policy I/O adds to CP's path with and without a
    sleep, what a real 1 ns sleep costs, and the Python reference's ns for scale."""
    found = data["engine-overhead"]
    res = found["results"]
    loop, sleep = res["loop"], res["sleep"]
    ns = {m: _median_of(runs, "ns_per_io") for m, runs in loop.items()}
    slept = {m: runs[0]["sleeps"] / res["ios"] for m, runs in loop.items()}
    cp = ns["CP"]
    lines = ["| mode | ns an I/O | beyond CP's path | I/Os that slept |", "|---|---|---|---|"]
    for mode in ("INT", "CP", "LHP", "EHP", "PAS", "DPAS"):
        each = [r["ns_per_io"] for r in loop[mode]]
        beyond = "" if mode in ("INT", "CP") else f"+{ns[mode] - cp:.0f}"
        lines.append(
            f"| {mode} | {ns[mode]:.0f} ({min(each):.0f}-{max(each):.0f}) | {beyond} "
            f"| {slept[mode]:.0%} |"
        )
    # DPAS's I/Os mostly take CP's path; PAS's all sleep: DPAS's extra is the mix of the two
    pas_extra, share = ns["PAS"] - cp, slept["DPAS"]
    unslept = (ns["DPAS"] - cp - share * pas_extra) / (1 - share)
    per_sleep = [
        (_median_of(runs, "ns_per_io") - ns[m]) * res["sleep_ios"] / runs[0]["sleeps"] / 1000
        for m, runs in sleep.items()
    ]
    python = res["python_ns"].values()
    head = (
        f"The hot loop's own work per I/O, on its fake device with the real clock read where "
        f"the loop reads it (median and range of {len(loop['CP'])} interleaved rounds of "
        f"{res['ios']:,} I/Os; `{found['command']}` on {machine_text(found)}):"
    )
    tail = (
        f"A policy I/O that does not sleep thus costs CP's path plus about {unslept:.0f} ns "
        f"(two short lock holds and the decisions: DPAS's I/Os less PAS's share of sleeping "
        f"ones), and a sleeping one about {pas_extra:.0f} ns of bookkeeping plus the sleep's "
        f"system call and wake-up, which on this machine cost {min(per_sleep):.1f}-"
        f"{max(per_sleep):.1f} us each (a `clock_nanosleep` of 1 ns, timer slack 1 ns, in "
        f"{res['sleep_ios']:,}-I/O rounds). The same decisions in dpas.policy's Python cost "
        f"{min(python):,.0f}-{max(python):,.0f} ns."
    )
    return framed(head, lines, tail)


def sweep_sizing(data: dict[str, dict[str, Any]]) -> str:
    """docs/sweep.md: benchmarks/sweep_sizing.py --save: the example grid's rate in the pool
    and on local:2, with and without repeats, and what it makes per core-hour; a paper-sized
    point's cost from docs/bench.md's throughput (sim-throughput)."""
    found = data["sweep-sizing"]
    runs = found["results"]["runs"]
    cores = found["machine"]["cores"]

    def span(key: str, field: str, form: str) -> str:
        low, high = (f"{f(x[field] for x in runs[key]):{form}}" for f in (min, max))
        return low if low == high else f"{low}-{high}"

    def rate(key: str) -> str:
        return span(key, "points_per_s", ".0f")

    def wall(key: str) -> str:
        return span(key, "sweep_wall_s", ".1f") + " s"

    start = _median_of(runs["local:2 x1"], "command_s") - _median_of(runs["pool x1"], "command_s")
    pool10 = _median_of(runs["pool x10"], "points_per_s")
    small = pool10 / cores * 3600
    rates = _sim_rates(data["sim-throughput"])
    peak = data["sim-throughput"]["results"]["peak_rss"]
    paper = rates[(peak["profile"], peak["cpus"], peak["jobs"])]
    fast, slow = max(c for c, _ in paper.values()), min(c for c, _ in paper.values())
    seconds = (peak["ios"] / fast, peak["ios"] / slow)
    per_hour = 3600 / seconds[1], 3600 / seconds[0]
    workers = 3200
    first = wrapped(
        f"Measured on {machine_text(found)} (`{found['command']}`, "
        f"{len(runs['pool x1'])} rounds interleaved), `{found['results']['grid']}` (12 DPAS "
        f"points of 0.1 s simulated; the summary's rate counts from the first point, after a "
        f"cluster has started): the pool {rate('pool x1')} points per wall second "
        f"({wall('pool x1')}), `local:2` {rate('local:2 x1')} ({wall('local:2 x1')}, plus "
        f"about {start:.1f} s to start the cluster). The same grid with `repeats = 10` (120 "
        f"points): the pool {rate('pool x10')} points per wall second, `local:2` "
        f"{rate('local:2 x10')}."
    )
    second = wrapped(
        f"Per core-hour, from these figures: {pool10:.0f} points a second on {cores} cores is "
        f"about {round(small, -3):,.0f} points of 0.1 s on the lab's guest per core-hour. A "
        f"point the size of the paper's ({peak['runtime_s']:g} s, {peak['jobs']} "
        f"{peak['profile']} jobs: {peak['ios'] / 1000:.0f}k simulated I/Os at "
        f"{slow / 1000:.0f}k-{fast / 1000:.0f}k a second a core, docs/bench.md) takes "
        f"{seconds[0]:.1f}-{seconds[1]:.1f} s: {per_hour[0]:,.0f}-{per_hour[1]:,.0f} a "
        f"core-hour. A 100-node cluster of 32 cores each ({workers:,} workers, one point a "
        f"worker at a time) would run {workers * per_hour[0] / 1e6:.1f}-"
        f"{workers * per_hour[1] / 1e6:.1f} million such points an hour."
    )
    return first + "\n" + second


#: each block's name and what writes it
BLOCKS: dict[str, Callable[[dict[str, dict[str, Any]]], str]] = {
    "optane-grid": optane_grid,
    "fit-claim": fit_claim,
    "fit-table": fit_table,
    "qemu-lab-summary": qemu_lab_summary,
    "cell-example": cell_example,
    "rules-table": rules_table,
    "sizes-table": sizes_table,
    "macro-table": macro_table,
    "tune-example": tune_example,
    "lab-fit": lab_fit,
    "guest-phases": guest_phases,
    "guest-engine-vs-fio": guest_engine_vs_fio,
    "vm-times": vm_times,
    "sim-throughput": sim_throughput,
    "engine-overhead": engine_overhead,
    "sweep-sizing": sweep_sizing,
}


# -- rewriting and checking the pages -----------------------------------------------------------


def blocks(text: str) -> Iterator[re.Match[str]]:
    return BLOCK.finditer(text)


def rendered(text: str, data: dict[str, dict[str, Any]], page: Path) -> tuple[str, list[str]]:
    """The page with every block written from ``data``, and the blocks that changed."""
    changed: list[str] = []

    def write(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise SystemExit(f"{page.name}: unknown block {name!r}; known: {', '.join(BLOCKS)}")
        body = BLOCKS[name](data)
        if body != match["body"]:
            changed.append(f"{page.relative_to(ROOT)}: {name}")
        return match["head"] + body + match["tail"]

    return BLOCK.sub(write, text), changed


def run(check: bool, data: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Rewrite (or, with ``check``, only compare) every page's blocks; the blocks that differ."""
    data = data or {name: load_data(name) for name in (*MAKERS, *FROZEN)}
    differ: list[str] = []
    for page in PAGES:
        text = page.read_text()
        new, changed = rendered(text, data, page)
        differ += changed
        if changed and not check:
            page.write_text(new)
    return differ


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a block differs")
    parser.add_argument(
        "--rerun", nargs="*", choices=sorted(MAKERS), metavar="DATA",
        help=f"rerun the simulations into docs/data/ first (all, or some of {', '.join(MAKERS)})",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.rerun is not None:
        for name in args.rerun or MAKERS:
            save_data(name, MAKERS[name]())
    differ = run(args.check)
    for block in differ:
        print(("differs: " if args.check else "rewrote: ") + block)
    return 1 if args.check and differ else 0


if __name__ == "__main__":
    sys.exit(main())
