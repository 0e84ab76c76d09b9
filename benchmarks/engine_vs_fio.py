"""The engine against fio in one guest boot (run by hand; a few minutes under TCG).

    python benchmarks/engine_vs_fio.py [--kernel build:7.2] [--runtime 2] [--rounds 3]
    python benchmarks/engine_vs_fio.py --compare dpas-cp [--rounds 5]

``--compare dpas-cp``: per round, interleaved, fio's io_uring CP (hipri), the engine's CP, INT
and DPAS with the guide's test order (one job: mostly in CP), and PAS with and without its
per-I/O log, at 1 job; the mean and spread of each, the logged PAS's IOPS and p99 over the
unlogged one's, and DPAS's IOPS over CP's per round; DPAS's log splits its latency into the
I/Os that took CP's path and those that slept.

``--compare all`` (the default) boots the QEMU guest of ``dpas vm`` once and, in it, alternates
in each round:
  - fio io_uring hipri=0 and the engine's INT, then fio io_uring hipri=1 and the engine's CP,
    at 1 job: the engine must not distort what it measures (target: within 3%);
  - the same at 16 jobs split over the guest's CPUs (how both scale);
  - PAS and DPAS at 1 job with d_init 1000, 4000 and auto (a tenth of INT's mean latency)
    beside CP, INT and HYB: IOPS and CPU.
TCG's timers vary from boot to boot: compare modes within this one run.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from collections import defaultdict
from pathlib import Path

from measured import save

from dpas.vm.guest import GuestRun
from dpas.vm.python import guest_python
from dpas.vm.runner import VmConfig, _guest_kernel, _run_guest

GUEST_CODE = r"""
import json, subprocess
from pathlib import Path
from dpas.engine import EngineRun, run
from dpas.policy import Op, Order, PasParams, PolicyConfig
from dpas.real.fio import FioJob
from dpas.machine.fio import parse
from dpas.results import RunKey

DRIVE = Path("/dev/nvme0n1")
RUNTIME, ROUNDS, COMPARE = {runtime}, {rounds}, {compare!r}

def fio(jobs, hipri):
    cpus = "0" if jobs == 1 else "split"
    job = FioJob(DRIVE, Op.READ, 4096, jobs, RUNTIME, "io_uring", hipri, cpus)
    argv = job.argv("/usr/bin/fio", 2)
    done = subprocess.run(argv, capture_output=True, text=True)
    r = parse(done.stdout, RunKey.of("CP" if hipri else "INT", jobs, Op.READ, 1))
    return {{"iops": r.iops, "cpu": r.cpu_pct, "lat": r.lat_mean_us}}

def engine(mode, jobs, d_init=4000, order=Order.KERNEL, log=0):
    cpus = (0,) if jobs == 1 else tuple(i % 2 for i in range(jobs))
    policy = PolicyConfig(pas=PasParams(d_init=d_init), order=order)
    r = run(
        EngineRun(DRIVE, mode, policy=policy, cpus=cpus, runtime_s=RUNTIME, region_bytes=1 << 30,
                  log_ios=log)
    )
    over = sum(j.overslept for j in r.jobs)
    under = sum(j.underslept for j in r.jobs)
    value = {{"iops": r.iops, "cpu": r.cpu_pct, "lat": r.lat_mean_us, "over": over,
              "under": under, "p99": r.lat_percentiles_us()[1]}}
    if r.cpus:
        value["cp_share"] = sum(c.totals["cp"] for c in r.cpus) / max(r.ios, 1)
    if log:
        # the log splits the run: the I/Os that took CP's path (polled, no sleep), the others
        entries = [e for j in r.jobs for e in j.log.tolist()]
        for name, picked in (("lat_unslept", [e for e in entries if e[8] & 1 and not e[8] & 2]),
                             ("lat_slept", [e for e in entries if e[8] & 2])):
            if picked:
                value[name] = sum(e[3] - e[0] for e in picked) / len(picked) / 1000
    return value

def emit(round_, name, value):
    print("@@B " + json.dumps({{"round": round_, "name": name, **value}}), flush=True)

for rnd in range(ROUNDS if COMPARE == "dpas-cp" else 0):
    emit(rnd, "fio CP x1", fio(1, True))
    emit(rnd, "engine CP x1", engine("CP", 1))
    emit(rnd, "engine INT x1", engine("INT", 1))
    emit(rnd, "engine DPAS x1 guide", engine("DPAS", 1, 1000, Order.GUIDE, log=2_000_000))
    emit(rnd, "engine PAS x1", engine("PAS", 1, 1000))
    emit(rnd, "engine PAS x1 logged", engine("PAS", 1, 1000, log=2_000_000))

for rnd in range(ROUNDS if COMPARE == "all" else 0):
    emit(rnd, "fio INT x1", fio(1, False))
    i = engine("INT", 1)
    emit(rnd, "engine INT x1", i)
    emit(rnd, "fio CP x1", fio(1, True))
    emit(rnd, "engine CP x1", engine("CP", 1))
    emit(rnd, "fio INT x16", fio(16, False))
    emit(rnd, "engine INT x16", engine("INT", 16))
    emit(rnd, "fio CP x16", fio(16, True))
    emit(rnd, "engine CP x16", engine("CP", 16))
    auto = max(round(i["lat"] * 100), 1)
    try:
        emit(rnd, "engine HYB x1", engine("HYB", 1))
    except Exception as err:
        print("@@NOTE HYB", err)
    for d_init, label in ((1000, "1000"), (4000, "4000"), (auto, "auto")):
        for mode in ("PAS", "DPAS"):
            value = {{**engine(mode, 1, d_init), "d_init": d_init}}
            emit(rnd, f"engine {{mode}} x1 d_init {{label}}", value)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernel", default="build:7.2")
    parser.add_argument("--runtime", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compare", choices=("all", "dpas-cp"), default="all")
    parser.add_argument("--cache", type=Path, help="dpas vm's cache (default: its own)")
    parser.add_argument("--save", type=Path, help="save each round's values (docs/data/...)")
    args = parser.parse_args()
    config = VmConfig(GuestRun(), args.kernel)
    if args.cache:
        config = VmConfig(GuestRun(), args.kernel, cache=args.cache)
    kernel = _guest_kernel(config)
    python = guest_python()
    code = GUEST_CODE.format(runtime=args.runtime, rounds=args.rounds, compare=args.compare)
    script = (
        'echo "@@UNAME $(uname -r)"\n'
        f"cat > /tmp/bench.py <<'PYEOF'\n{code}\nPYEOF\n"
        f"PYTHONPATH={python.pythonpath} PYTHONDONTWRITEBYTECODE=1 {python.interpreter} "
        "/tmp/bench.py\n"
        'echo "@@DONE"\n'
    )
    per_round = (14 if args.compare == "all" else 6) * (args.runtime + 5)
    text, accel, _ = _run_guest(
        config, kernel, "engine-vs-fio", script, python, args.rounds * per_round
    )
    rows: dict[str, list[dict[str, float]]] = defaultdict(list)
    for line in re.findall(r"^@@B (.*)$", text, re.M):
        value = json.loads(line)
        rows[value.pop("name")].append(value)
    uname = re.search(r"^@@UNAME (\S+)", text, re.M)
    print(f"guest kernel {uname[1] if uname else '?'} under {accel}, {args.rounds} rounds")
    for note in re.findall(r"^@@NOTE (.*)$", text, re.M):
        print("note:", note)
    print(f"{'run':28} {'IOPS mean':>9} {'sd':>6} {'min-max':>13} {'CPU%':>6} {'lat us':>8} "
          f"{'p99 us':>8} {'over/under':>12}")  # fmt: skip
    for name, values in rows.items():
        iops = [v["iops"] for v in values]
        sd = statistics.stdev(iops) if len(iops) > 1 else 0.0
        cpu = statistics.mean(v["cpu"] for v in values)
        lat = statistics.mean(v["lat"] for v in values)
        p99 = statistics.mean(v.get("p99", 0.0) for v in values)
        sleeps = f"{sum(v.get('over', 0) for v in values):.0f}/" + (
            f"{sum(v.get('under', 0) for v in values):.0f}"
        )
        share = [v["cp_share"] for v in values if "cp_share" in v]
        extra = f"  in CP {statistics.mean(share):.0%}" if share else ""
        for key, label in (("lat_unslept", "CP's path"), ("lat_slept", "slept")):
            lats = [v[key] for v in values if key in v]
            if lats:
                extra += f", lat {label} {statistics.mean(lats):.1f} us"
        print(f"{name:28} {statistics.mean(iops):9.0f} {sd:6.0f} "
              f"{min(iops):6.0f}-{max(iops):<6.0f} {cpu:6.1f} {lat:8.1f} {p99:8.1f} {sleeps:>12}"
              f"{extra}")  # fmt: skip
    pairs = [
        ("engine DPAS x1 guide", "engine CP x1"),
        ("engine CP x1", "fio CP x1"),
        ("engine PAS x1 logged", "engine PAS x1"),
    ]
    if args.compare == "all":
        pairs = [(f"engine {p}", f"fio {p}") for p in ("INT x1", "CP x1", "INT x16", "CP x16")]
    print("per round, IOPS ratio:")
    for a, b in pairs:
        for what in ("iops", "p99") if "logged" in a else ("iops",):
            ratios = [x[what] / y[what] for x, y in zip(rows[a], rows[b], strict=False)]
            mean = statistics.mean(ratios) if ratios else 0.0
            print(f"  {a} / {b} ({what}): mean {mean:.3f}, " + " ".join(f"{r:.3f}" for r in ratios))
    if args.save:
        what = f"engine_vs_fio --compare {args.compare}: each run's values per round"
        results = {"kernel_spec": args.kernel, "guest_kernel": uname[1] if uname else None,
                   "accelerator": accel, "runtime_s": args.runtime, "rounds": rows}  # fmt: skip
        save(args.save, what, results)


if __name__ == "__main__":
    main()
