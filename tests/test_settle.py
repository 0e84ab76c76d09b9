"""State left by earlier runs on the DPAS kernel: what dpas checks, settles, refuses, records.

The fake kernel is a sysfs root made here (test_real.sysfs) and a stand-in fio that sends each
I/O through the switch as the kernel does (reference §4, by dpas.policy.switch's SwitchState):
the submission hook counts, and in INT forces, every synchronous polled I/O whatever
switch_enabled says; the evaluation runs only with switch_enabled 1. Whether a CPU gets back
to PAS is the model's answer; the tests check what dpas does with it.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
from conftest import run_dpas
from hypothesis import given
from hypothesis import strategies as st
from test_real import sysfs, values

from dpas.bench.backend import Sweep
from dpas.policy import Method, SwitchParams
from dpas.policy.switch import Mode, SwitchState
from dpas.policy.switch_stat import NoBreakdown, SwitchStatLine, delta, parse, render
from dpas.real.executor import LocalExecutor
from dpas.real.modes import ModePlan
from dpas.real.runner import Runner
from dpas.real.settle import Budget, Settler, Unsettled, out_of_pas
from dpas.real.site import RealConfig
from dpas.real.switch_watch import Snapshot
from dpas.real.switch_watch import breakdown as _breakdown

#: small evaluation periods, so that settling takes a few stand-in runs
PARAMS = SwitchParams(param5=10, param6=50, param7=100)
#: I/Os each job of a measured (time_based) stand-in run does
PER_RUN = 150

FAKE_FIO = """#!{python}
# fio's stand-in on the fake DPAS kernel: every I/O through the switch on the CPU it is pinned to
import json, sys
from pathlib import Path
from dataclasses import asdict
from dpas.policy.switch import Mode, SwitchParams, SwitchState
from dpas.policy.switch_stat import SwitchStatLine, render

if "--version" in sys.argv:
    print("fio-3.33")
    sys.exit(0)
QUEUE, STATE, LOG = Path({queue!r}), Path({state!r}), Path({log!r})
args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
dpas = (QUEUE / "switch_stat").exists()  # else a stock kernel: no switch at all
knob = lambda name: int((QUEUE / name).read_text()) if dpas else 0
params = SwitchParams(**{{f"param{{i}}": knob(f"switch_param{{i}}") or 1 for i in range(1, 8)}})
switching = knob("switch_enabled") == 1
counted = dpas and args.get("hipri") == "1" and args["ioengine"] == "pvsync2"
listed = []
for part in args["cpus_allowed"].split(","):
    low, _, high = part.partition("-")
    listed += range(int(low), int(high or low) + 1)
per_job = int(args.get("number_ios", {per_run}))
raw = json.loads(STATE.read_text())
states = {{int(c): SwitchState(**{{**s, "mode": Mode(s["mode"])}}) for c, s in raw.items()}}
done = 0
for job in range(int(args["numjobs"])):
    cpu = listed[0] if args["cpus_allowed_policy"] == "shared" else listed[job % len(listed)]
    sw = states[cpu]
    for _ in range(per_job):
        done += 1
        if not counted:  # interrupt I/O and io_uring: the switch never sees them
            continue
        polled, _ = sw.count_submit(params)  # counts, and in INT forces, whatever switch_enabled
        if polled and switching:
            waits = sw.mode is not Mode.CP
            if waits:
                sw.qd += 1
                sw.qd_sum += sw.qd
            sw.evaluate(params)
            if waits:
                sw.qd -= 1
if dpas:
    STATE.write_text(json.dumps({{c: asdict(s) for c, s in states.items()}}))
    (QUEUE / "switch_stat").write_text(
        render(SwitchStatLine.of(c, s, params) for c, s in sorted(states.items()))
    )
with LOG.open("a") as f:
    f.write(json.dumps({{"argv": sys.argv[1:], "ios": done, "switch_enabled": knob(
        "switch_enabled"), "pas_enabled": knob("pas_enabled")}}) + "\\n")
side = {{"total_ios": done, "runtime": 1000, "iops": float(done), "lat_ns": {{"mean": 50000.0}},
        "clat_ns": {{"percentile": {{"50.000000": 40000, "99.000000": 90000}}}}}}
print(json.dumps({{"jobs": [{{"error": 0, "job_runtime": 1000, "usr_cpu": 1.0, "sys_cpu": 2.0,
                             "ctx": 100, "read": side, "write": side}}]}}))
"""


class Kernel:
    """A DPAS kernel's queue with four CPUs' switch state, a data file on its disk, the
    stand-in fio, and a Runner on them."""

    def __init__(self, tmp: Path, modes: dict[int, Mode], dpas: bool = True) -> None:
        self.tmp = tmp
        self.root, self.queue = sysfs(tmp, dpas=dpas)
        if dpas:  # the kernel's defaults, as it boots
            for name, value in asdict(SwitchParams()).items():
                (self.queue / f"switch_{name}").write_text(f"{value}\n")
        st_dev = tmp.stat().st_dev
        links = self.root / "dev" / "block"
        links.mkdir(parents=True)
        (links / f"{os.major(st_dev)}:{os.minor(st_dev)}").symlink_to("../../block/nvme0n1")
        self.data = tmp / "data"
        self.data.write_bytes(os.urandom(1 << 20))
        self.state, self.log = tmp / "kernel.json", tmp / "fio.log"
        self.fio = tmp / "fio"
        self.fio.write_text(
            FAKE_FIO.format(
                python=sys.executable,
                queue=str(self.queue),
                state=str(self.state),
                log=str(self.log),
                per_run=PER_RUN,
            )
        )
        self.fio.chmod(0o755)
        self.set_modes(modes)
        if not dpas:
            (self.queue / "switch_stat").unlink(missing_ok=True)
        self.original = self.knobs()
        self.said: list[str] = []

    def set_modes(self, modes: dict[int, Mode]) -> None:
        """The switch as earlier runs left it: CPUs 0-3, each in its mode with its counters
        at 0 (a CPU in INT then needs all of param7 I/Os to leave)."""
        states = {cpu: SwitchState(mode=modes.get(cpu, Mode.PAS)) for cpu in range(4)}
        self.state.write_text(json.dumps({c: asdict(s) for c, s in states.items()}))
        (self.queue / "switch_stat").write_text(
            render(SwitchStatLine.of(c, s, SwitchParams()) for c, s in states.items())
        )

    def knobs(self) -> dict[str, str]:
        return {k: v for k, v in values(self.queue).items() if k != "switch_stat"}

    def runner(self, settle: bool = True) -> Runner:
        config = RealConfig(
            str(self.data), fio=str(self.fio), journal=self.tmp / "j.json", settle=settle
        )
        runner = Runner(config, LocalExecutor(self.root, release="5.18.0-dpas"))
        runner.site.online_cpus = 4
        runner.say = self.said.append
        return runner

    def runs(self) -> list[dict[str, object]]:
        """What the stand-in fio was asked, in order (settling runs have number_ios)."""
        text = self.log.read_text() if self.log.exists() else ""
        return [json.loads(line) for line in text.splitlines()]

    def settling_runs(self) -> list[dict[str, object]]:
        return [r for r in self.runs() if any("--number_ios" in a for a in r["argv"])]  # type: ignore[attr-defined]


def sweep(
    *modes: Method,
    jobs: tuple[int, ...] = (1,),
    repeats: int = 1,
    cpus: str = "0",
    switch: SwitchParams = PARAMS,
) -> Sweep:
    return Sweep(
        modes, jobs=jobs, repeats=repeats, cpus=cpus, runtime_s=1, d_init_ns=5000, switch=switch
    )


PAS_EVERYWHERE = {"0": "PAS", "1": "PAS", "2": "PAS", "3": "PAS"}


def test_a_cpu_left_in_int_is_settled_and_the_run_goes_on(tmp_path: Path) -> None:
    """CPU 0 in INT: param7 polled single-job reads on it take it to OL, param5 more to PAS,
    under the DPAS knobs; then the PAS run runs and its record shows every CPU's mode."""
    kernel = Kernel(tmp_path, {0: Mode.INT, 2: Mode.CP})
    bench = kernel.runner().run(sweep(Method.PAS))
    settling = kernel.settling_runs()
    assert [r["ios"] for r in settling] == [100, 10]  # param7 in INT, then param5 in OL
    for run in settling:
        argv = run["argv"]
        assert "--ioengine=pvsync2" in argv and "--hipri=1" in argv and "--numjobs=1" in argv
        assert "--cpus_allowed=0" in argv and "--readonly" in argv and "--time_based" not in argv
        assert run["switch_enabled"] == 1 and run["pas_enabled"] == 1
    [record] = bench.records
    assert record.cpu_modes == {
        "before": {"0": "PAS", "1": "PAS", "2": "CP", "3": "PAS"},  # CPU 2 is not the run's
        "after": {"0": "PAS", "1": "PAS", "2": "CP", "3": "PAS"},
    }
    assert "CPU 0 settled INT -> OL -> PAS before the run (110 polled single-job reads)" in (
        record.note or ""
    )
    assert kernel.said[0].startswith("settling CPU 0, left in INT (MODE[0]): one job of polled")
    assert kernel.said[-1] == "CPU 0 back in PAS: INT -> OL -> PAS, 110 polled reads in 2 fio runs"
    assert kernel.knobs() == kernel.original and not (tmp_path / "j.json").exists()


def test_a_run_that_leaves_its_cpu_out_of_pas_is_followed_by_a_settled_one(
    tmp_path: Path,
) -> None:
    """A DPAS run of one job ends in CP (PAS -> CP -> PAS -> ...); before the repeat the knob
    block ends, CPU 0 is settled CP -> PAS, and the repeat starts in PAS."""
    kernel = Kernel(tmp_path, {})
    bench = kernel.runner().run(sweep(Method.DPAS, repeats=2))
    first, second = bench.records
    assert first.cpu_modes == {"before": PAS_EVERYWHERE, "after": PAS_EVERYWHERE | {"0": "CP"}}
    assert second.cpu_modes is not None and second.cpu_modes["before"] == PAS_EVERYWHERE
    assert "CPU 0 settled CP -> PAS" in (second.note or "")
    assert "settled" not in (first.note or "")
    assert [r["ios"] for r in kernel.settling_runs()] == [10, 10, 10]  # param5 steps in CP
    for record in (first, second):
        assert record.breakdown is not None and min(record.breakdown.values()) >= 0
        assert sum(record.breakdown.values()) == PER_RUN
    assert kernel.knobs() == kernel.original and not (tmp_path / "j.json").exists()


def test_settling_that_never_reaches_pas_is_refused_in_one_line(tmp_path: Path) -> None:
    """param2 5 and param3 5: one job's mean queue depth (1.0, i.e. 10) sends OL back to INT
    every time, so the CPU goes round INT -> OL -> INT until the budget is spent."""
    kernel = Kernel(tmp_path, {0: Mode.INT})
    loop = SwitchParams(param2=5, param3=5, param5=10, param6=50, param7=100)
    with pytest.raises(Unsettled) as refused:
        kernel.runner().run(sweep(Method.CP, switch=loop))
    message = str(refused.value)
    assert message == (
        "CPU 0 was left in INT (MODE[0]) by an earlier DPAS run and is not back in PAS "
        "(MODE[2]) after 360 polled single-job reads in 7 fio runs "
        "(INT -> OL -> INT -> OL -> INT -> OL -> INT): its polled I/Os would be forced to "
        "interrupt completion (the kernel does so in INT whatever switch_enabled says); "
        "clear it with a reboot, or run DPAS with one job on CPU 0 (fio pvsync2 hipri) until "
        "switch_stat shows MODE[2]"
    )
    assert sum(r["ios"] for r in kernel.settling_runs()) == Budget.of(loop, 256).ios == 360
    assert len(kernel.runs()) == 7  # the CP run itself never started
    assert kernel.knobs() == kernel.original and not (tmp_path / "j.json").exists()


def test_no_settle_refuses_at_once_naming_every_cpu(tmp_path: Path) -> None:
    kernel = Kernel(tmp_path, {0: Mode.OL, 1: Mode.CP, 3: Mode.INT})
    with pytest.raises(Unsettled) as refused:
        kernel.runner(settle=False).run(sweep(Method.LHP, jobs=(2,), cpus="split"))
    assert str(refused.value) == (
        "CPU 0 was left in OL (MODE[3]) by an earlier DPAS run (also CPU 1 in CP (MODE[1])) "
        "(--no-settle): its I/Os would be counted in OL, and a DPAS run would start overloaded, "
        "not in PAS; clear it with a reboot, or run DPAS with one job on CPU 0 (fio pvsync2 "
        "hipri) until switch_stat shows MODE[2], or leave out --no-settle"
    )  # CPU 3 is not one of the two jobs' CPUs
    assert kernel.runs() == [] and kernel.knobs() == kernel.original


def test_mode_4_is_refused_naming_ehp_and_an_ehp_run_accepts_it(tmp_path: Path) -> None:
    """Nothing in the switch leaves MODE[4] (reference §4's transitions; §9: EHP leaves it):
    a polled run on it is refused without trying; EHP's own runs find their own mark."""
    kernel = Kernel(tmp_path, {0: Mode.EHP})
    with pytest.raises(Unsettled) as refused:
        kernel.runner().run(sweep(Method.DPAS))
    assert str(refused.value) == (
        "CPU 0 is in MODE[4], which an earlier EHP run left there (reference §9) and no DPAS "
        "I/O leaves: the switch has no transition out of it, so this run's I/Os would be "
        "counted in no mode of the switch; clear it with a reboot (and run EHP last in a sweep)"
    )
    assert kernel.runs() == []
    bench = kernel.runner().run(sweep(Method.EHP))
    assert bench.records[0].cpu_modes["before"]["0"] == "EHP"  # type: ignore[index]
    assert kernel.settling_runs() == [] and kernel.knobs() == kernel.original


def test_interrupt_runs_are_not_counted_so_not_settled(tmp_path: Path) -> None:
    """INT runs without hipri: the switch never sees their I/Os, so CPU 0 in INT is only
    recorded."""
    kernel = Kernel(tmp_path, {0: Mode.INT})
    [record] = kernel.runner().run(sweep(Method.INT)).records
    assert kernel.settling_runs() == [] and record.cpu_modes["before"]["0"] == "INT"  # type: ignore[index]


def test_a_stock_kernel_does_nothing_new(tmp_path: Path) -> None:
    kernel = Kernel(tmp_path, {}, dpas=False)
    [record] = kernel.runner().run(sweep(Method.CP)).records
    assert len(kernel.runs()) == 1 and kernel.settling_runs() == []
    assert record.cpu_modes is None and record.breakdown is None
    assert record.note == "CP: classic polling, fio pvsync2 hipri (sync hipri polls (up to 5.18))"
    assert kernel.said == [] and kernel.knobs() == kernel.original


def test_the_cli_refuses_with_one_line_and_exit_2(tmp_path: Path) -> None:
    """Through the command (this machine's kernel is newer than 5.18: --ioengine pvsync2 makes
    the run synchronous polled I/O, which the switch counts)."""
    kernel = Kernel(tmp_path, {0: Mode.INT})
    out = run_dpas(
        "bench", "PAS", "--device", str(kernel.data), "--sysfs-root", str(kernel.root),
        "--fio", str(kernel.fio), "--journal", str(tmp_path / "j.json"), "--d-init", "5000",
        "--jobs", "1", "--runtime", "1", "--size", "1m", "--out", str(tmp_path / "out"),
        "--no-settle", "--ioengine", "pvsync2",
    )  # fmt: skip
    assert out.returncode == 2 and "Traceback" not in out.stderr
    [line] = out.stderr.strip().splitlines()
    assert line.startswith("dpas: error: CPU 0 was left in INT (MODE[0]) by an earlier DPAS run")
    assert line.endswith("or leave out --no-settle")
    assert kernel.runs() == [] and kernel.knobs() == kernel.original


# -- the pieces ----------------------------------------------------------------------------


def test_the_budget_is_twice_the_longest_way_back() -> None:
    default = Budget.of(SwitchParams())
    assert default.chunk == {Mode.INT: 10000, Mode.OL: 100, Mode.CP: 100}
    assert (default.ios, default.runs) == (2 * (10000 + 1000 + 300), 2 * (1 + 10 + 3))
    small_file = Budget.of(SwitchParams(), capacity=256)  # 1 MiB of 4 KiB reads
    assert small_file.chunk[Mode.INT] == 256 and small_file.runs == 2 * (40 + 10 + 3)


def test_the_cpus_judged_are_the_runs_own() -> None:
    polled = ModePlan(Method.PAS, "pvsync2", True)
    ehp = ModePlan(Method.EHP, "pvsync2", True)
    modes = {0: Mode.PAS, 1: Mode.INT, 2: Mode.EHP}
    assert out_of_pas(modes, [0], polled) == {}
    assert out_of_pas(modes, [0, 1, 2, 7], polled) == {1: Mode.INT, 2: Mode.EHP}  # 7: not shown
    assert out_of_pas(modes, [2], ehp) == {}


def line(cpu: int, cp: int, pas: int = 0, ol: int = 0, int_: int = 0) -> SwitchStatLine:
    return SwitchStatLine(cpu, Mode.PAS, 0, 0, 10, 10, cp, pas, ol, int_)


def test_a_breakdown_is_never_negative_and_says_why_there_is_none() -> None:
    before = [line(0, 100, 50), line(1, 0, 10)]
    assert delta(before, [line(0, 150, 60), line(1, 0, 10)]) == {
        "cp": 50,
        "pas": 10,
        "ol": 0,
        "int": 0,
    }
    cases = {
        # CPU 0 lost more than CPU 1 gained: a sum would hide it
        "counters went backwards on CPU 0": [line(0, 90, 50), line(1, 0, 500)],
        "CPUs changed between its reads (CPU 2 appeared)": [*before, line(2, 5)],
        "CPUs changed between its reads (CPU 1 disappeared)": [line(0, 150, 60)],
    }
    for why, after in cases.items():
        with pytest.raises(NoBreakdown, match=why.replace("(", r"\(").replace(")", r"\)")):
            delta(before, after)
        breakdown, note = _breakdown(Snapshot(before), Snapshot(after))
        assert breakdown is None and note.endswith(": no breakdown") and why in note
    assert _breakdown(Snapshot(before), Snapshot([])) == (
        None,
        "switch_stat showed no CPU lines: no breakdown",
    )


totals = st.tuples(*[st.integers(0, 2**64 - 1)] * 4)


@given(st.dictionaries(st.integers(0, 3), totals), st.dictionaries(st.integers(0, 3), totals))
def test_no_pair_of_snapshots_gives_a_negative_count(
    old: dict[int, tuple[int, ...]], new: dict[int, tuple[int, ...]]
) -> None:
    before = [line(cpu, *t) for cpu, t in old.items()]
    after = [line(cpu, *t) for cpu, t in new.items()]
    breakdown, why = _breakdown(Snapshot(before), Snapshot(after))
    assert (breakdown is None) == bool(why)
    assert breakdown is None or min(breakdown.values()) >= 0


def test_mode_4_parses_and_renders() -> None:
    text = (
        "CPU[ 1] MODE[4] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: 0, pas io: 7, "
        "ol io: 0, int io: 0\n"
    )
    [parsed] = parse(text)
    assert parsed.mode is Mode.EHP and render([parsed]) == text


def test_a_cpu_the_knob_writes_already_reset_needs_no_io() -> None:
    """The lab's kernel resets the switch when switch_enabled is written: the settler reads
    the mode again under the DPAS knobs and runs nothing."""
    ran: list[int] = []
    said: list[str] = []
    settler = Settler(
        Budget.of(PARAMS), lambda cpu, n: ran.append(n) or n, lambda: {0: Mode.PAS}, said.append
    )
    assert (
        settler.settle(0, Mode.INT)
        == "CPU 0 settled INT -> PAS before the run (0 polled single-job reads)"
    )
    assert ran == [] and said[-1] == "CPU 0 back in PAS: INT -> PAS, 0 polled reads in 0 fio runs"
