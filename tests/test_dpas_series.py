"""The DPAS series of kernel/ as dpas uses it without a guest: --kernel dpas:VERSION, the
series and its options, the modes' knob writes on its kernel, and the replay of its dpas_io
trace events through dpas.policy (the guest runs them for real: tests/test_vm_dpas.py)."""

from __future__ import annotations

import random
import subprocess
from pathlib import Path

import pytest

from dpas.machine.kernel import Kernel
from dpas.policy import Method, Op, PolicyConfig, Request, SwitchParams, make_policy
from dpas.real.decisions import Decision, DecisionTrace, differences, parse, policy_config
from dpas.real.executor import LocalExecutor
from dpas.real.knobs import QueueKnobs
from dpas.real.modes import Refused, plan_mode, resets_state
from dpas.vm import build
from dpas.vm.kernel import VmError
from dpas.vm.kernels import parse_kernel
from dpas.vm.series import read_series

KERNEL = Path(__file__).resolve().parents[1] / "kernel"
KERNEL_72 = Kernel.parse("7.2.13")


def test_the_series_names_its_patches_in_order_and_the_options_they_need() -> None:
    series = read_series(KERNEL)
    assert [p.name[:4] for p in series.patches] == ["0001", "0002", "0003"]
    assert "BLK_DPAS" in series.options and "FTRACE" in series.options
    text = series.patches[0].read_text()
    assert "+config BLK_DPAS" in text and "Signed-off-by:" in text
    # each patch touches what its subject says, the kernel's way (git format-patch)
    for patch in series.patches:
        assert patch.read_text().startswith("From ")


def test_a_missing_series_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(VmError, match="needs the DPAS patch series") as err:
        read_series(tmp_path)
    assert "\n" not in str(err.value)
    (tmp_path / "series").write_text("# none yet\n0001-gone.patch\n")
    (tmp_path / "config").write_text("CONFIG_BLK_DPAS=y\n")
    with pytest.raises(VmError, match="names 0001-gone.patch, which is not in"):
        read_series(tmp_path)


def test_kernel_spec_dpas_version() -> None:
    spec = parse_kernel("dpas:7.2")
    assert (spec.kind, spec.version) == ("dpas", "7.2")
    for bad in ("dpas:", "dpas:7", "dpas:seven"):
        with pytest.raises(VmError, match="expected dpas:MAJOR.MINOR"):
            parse_kernel(bad)


def test_the_series_options_change_the_build_key_not_the_base_build() -> None:
    plain = build.fragment_text()
    extra = build.fragment_text((*build.OPTIONS, "BLK_DPAS"))
    assert "CONFIG_BLK_DPAS=y" in extra and "CONFIG_BLK_DPAS" not in plain
    assert build.cache_key("7.2", plain, []) != build.cache_key("7.2", extra, [])


def _queue(tmp_path: Path) -> QueueKnobs:
    """The DPAS series' queue: its knobs, and io_poll_delay as 7.x shows it (-1, writes
    ignored), no ehp_enabled."""
    queue = tmp_path / "queue"
    queue.mkdir()
    knobs = {
        "io_poll": "1", "io_poll_delay": "-1", "nomerges": "0", "pas_enabled": "0",
        "pas_adaptive_enabled": "0", "pas_d_init": "100", "switch_enabled": "0",
        **{f"switch_param{i}": "0" for i in range(1, 8)}, "switch_stat": "",
    }  # fmt: skip
    for name, value in knobs.items():
        (queue / name).write_text(f"{value}\n")
    return QueueKnobs(LocalExecutor(), queue)


def test_on_the_series_kernel_pas_and_dpas_use_io_uring_and_lhp_ehp_are_refused(
    tmp_path: Path,
) -> None:
    knobs = _queue(tmp_path)
    pas = plan_mode(Method.PAS, KERNEL_72, knobs, 4000, SwitchParams())
    assert (pas.ioengine, pas.hipri) == ("io_uring", True)
    assert "io_poll_delay" not in pas.knobs  # no block hybrid path to switch on after 6.4
    assert pas.knobs["pas_enabled"] == "1" and pas.knobs["pas_d_init"] == "4000"
    dpas = plan_mode(Method.DPAS, KERNEL_72, knobs, 4000, SwitchParams(param3=30))
    assert list(dpas.knobs)[-1] == "switch_enabled" and dpas.knobs["switch_param3"] == "30"
    with pytest.raises(Refused, match="does not bring back"):
        plan_mode(Method.LHP, KERNEL_72, knobs, 4000, SwitchParams())
    with pytest.raises(Refused, match="needs the knob queue/ehp_enabled"):
        plan_mode(Method.EHP, KERNEL_72, knobs, 4000, SwitchParams())
    assert resets_state(KERNEL_72, knobs)  # a write of switch_enabled starts every CPU afresh
    assert not resets_state(Kernel.parse("5.18.0-dpas"), knobs)
    (knobs.queue_dir / "ehp_enabled").write_text("0\n")  # the 5.18 patch's, on a newer host
    assert not resets_state(KERNEL_72, knobs)


# --- the trace ----------------------------------------------------------------------------


def _line(d: Decision) -> str:
    """A dpas_io line as tracefs's trace file prints it (the TP_printk of kernel/ 0003)."""
    seconds, ns = divmod(d.t_ns, 1_000_000_000)
    return (
        f"             fio-201     [00{d.cpu}] .....    {seconds}.{ns // 1000:06d}: dpas_io: gen={d.gen} "
        f"cpu={d.cpu} seen={d.seen} write={d.write} bytes={d.bytes} bucket={d.bucket} "
        f"polled={d.polled} mode={d.mode} waited={d.waited} sleep={d.sleep} "
        f"dur_cnt={d.dur_cnt} found={d.found} qd={d.qd} seq={','.join(map(str, d.seq))}"
    )


def _kernel_run(config: PolicyConfig, n: int, seed: int, gen: int = 1) -> list[Decision]:
    """What a kernel that follows dpas.policy would trace: two CPUs, up to two requests in
    flight on each, random verdicts; each CPU numbers its events as the kernel does."""
    rng = random.Random(seed)
    policy = make_policy(config)
    seq = {0: 0, 1: 0}
    flying: list[tuple[object, dict[str, int]]] = []
    out: list[Decision] = []

    def take(cpu: int) -> int:
        seq[cpu] += 1
        return seq[cpu] - 1

    def finish(io: object, d: dict[str, int]) -> None:
        found = rng.random() < 0.8
        seen = d["cpu"] if rng.random() < 0.95 else 1 - d["cpu"]
        d["seq3"] = take(d["cpu"])
        policy.on_complete(io, 0, found, seen)  # type: ignore[arg-type]
        out.append(Decision(gen, d["cpu"], seen, 0, 4096, 6, d["polled"], d["mode"],
                            d["waited"], d["sleep"], d["dur_cnt"], int(found), 0,
                            (d["seq0"], d["seq1"], d["seq2"], d["seq3"]),
                            12_000_000_000 + 100_000 * len(out)))  # fmt: skip

    for _ in range(n):
        cpu = rng.randrange(2)
        io = policy.on_submit(cpu, Request(Op.READ, 4096), 0)
        d = {"cpu": cpu, "seq0": take(cpu), "seq1": 0, "seq2": 0, "polled": int(io.polled),
             "mode": -1 if io.mode is None else int(io.mode), "waited": 0, "sleep": 0,
             "dur_cnt": -1}  # fmt: skip
        if io.polled:
            d["seq1"] = take(cpu)
            d["sleep"] = policy.on_wait_start(io, 0)
            d["dur_cnt"] = io.dur_cnt
            d["seq2"] = take(cpu)
            policy.on_wait_end(io, 0)
            d["waited"] = 1
        flying.append((io, d))
        while len(flying) > 2 or (flying and rng.random() < 0.6):
            finish(*flying.pop(rng.randrange(len(flying))))
    while flying:
        finish(*flying.pop())
    return out


@pytest.mark.parametrize("method", [Method.PAS, Method.DPAS])
def test_a_kernel_that_follows_the_rules_replays_with_no_difference(method: Method) -> None:
    knobs = {"pas_enabled": "1", "pas_adaptive_enabled": "1", "pas_d_init": "1000",
             "switch_enabled": "1" if method is Method.DPAS else "0",
             **{f"switch_param{i}": str(v) for i, v in enumerate(
                 (0, 10, 10, 1, 20, 50, 100), start=1)}}  # fmt: skip
    config = policy_config(knobs)
    assert config.method is method and config.switch.param5 == 20
    decisions = _kernel_run(config, 3000, seed=7)
    # the trace file's text back: parsed as the kernel printed it, nothing lost
    header = f"# entries-in-buffer/entries-written: {len(decisions)}/{len(decisions)}   #P:2"
    parsed, lost = parse("\n".join([header, *map(_line, decisions)]))
    assert parsed == decisions and lost == 0
    assert differences(parsed, config) == []
    if method is Method.DPAS:  # the run left PAS: the modes it went through were replayed too
        assert {d.mode for d in decisions} > {2}
    # one sleep changed, one verdict flipped: both are found
    slept = [i for i, d in enumerate(decisions) if d.dur_cnt >= 0]
    wrong = list(decisions)
    i = slept[len(slept) // 2]
    wrong[i] = Decision(**{**_fields(wrong[i]), "sleep": wrong[i].sleep + 1})
    found = differences(wrong, config)
    assert found and found[0].startswith(f"request {i} ") and "slept" in found[0]

    def flip(k: int) -> list[Decision]:
        out = list(decisions)
        out[k] = Decision(**{**_fields(out[k]), "found": 1 - out[k].found})
        return out

    # a verdict PAS took (not every one counts: one per generation, on the CPU that slept)
    assert any(differences(flip(k), config) for k in slept[:40])


def _fields(d: Decision) -> dict[str, object]:
    return {name: getattr(d, name) for name in Decision.__dataclass_fields__}


def test_the_trace_is_armed_and_collected_through_tracefs_files(tmp_path: Path) -> None:
    """DecisionTrace on a folder laid out as tracefs: what it writes, and that a run's replay
    covers its generation so far (a new generation drops the old one)."""
    root = tmp_path / "tracing"
    event = root / "events" / "dpas" / "dpas_io"
    event.mkdir(parents=True)
    for name in ("tracing_on", "buffer_size_kb", "trace"):
        (root / name).write_text("")
    (event / "enable").write_text("0")
    trace = DecisionTrace(root)
    assert trace.available()
    knobs = {"pas_enabled": "1", "pas_adaptive_enabled": "1", "pas_d_init": "1000",
             "switch_enabled": "1", "switch_param5": "20", "switch_param6": "30"}  # fmt: skip
    config = policy_config(knobs)
    first = _kernel_run(config, 400, seed=1, gen=3)
    trace.arm()
    assert (event / "enable").read_text() == "1" and (root / "tracing_on").read_text() == "1"
    (root / "trace").write_text("\n".join(map(_line, first[:250])))
    one = trace.collect(knobs)
    assert (root / "tracing_on").read_text() == "0" and (root / "trace").read_text() == ""
    assert (one["ios"], one["replayed"], one["differences"]) == (250, 250, [])
    trace.arm()
    (root / "trace").write_text("\n".join(map(_line, first[250:])))
    two = trace.collect(knobs)
    assert (two["ios"], two["replayed"], two["differences"]) == (150, 400, [])
    # the mode changes of the run, dated from its first request (100 us apart here)
    changes = [t for t in one["timeline"] + two["timeline"]]
    assert changes and all(isinstance(ms, float) and ms >= 0 for ms, *_ in changes)
    assert {old for _, _, old, _ in changes} <= {"INT", "CP", "PAS", "OL"}
    assert all(ms <= 15.0 for ms, *_ in two["timeline"])  # 150 requests, 15 ms
    fresh = _kernel_run(config, 100, seed=2, gen=4)
    trace.arm()
    (root / "trace").write_text("\n".join(map(_line, fresh)))
    assert trace.collect(knobs)["replayed"] == 100


@pytest.mark.slow
def test_the_patches_are_checkpatch_clean() -> None:
    """scripts/checkpatch.pl --strict of Debian's linux-source: the tree `dpas vm bench
    --kernel build:` unpacks, fetched (about 160 MB) and unpacked here when not cached yet."""
    from test_vm_build import _build_cache, _version

    cache = _build_cache()
    version = _version(cache)
    tree = build.source_tree(version, cache) or build._tree(version, cache, lambda _: None)
    script = tree / "scripts" / "checkpatch.pl"
    assert script.is_file(), f"{tree} has no scripts/checkpatch.pl"
    for patch in read_series(KERNEL).patches:
        out = subprocess.run(
            ["perl", str(script), "--strict", "--no-tree", str(patch)],
            capture_output=True, text=True,
        )  # fmt: skip
        assert out.returncode == 0, out.stdout[-2000:]
        assert "total: 0 errors, 0 warnings, 0 checks" in out.stdout


def test_the_guest_header_says_what_the_replay_and_the_knobs_came_to() -> None:
    from dataclasses import replace

    from dpas.real.decisions import summary
    from dpas.results import RunResult
    from dpas.vm.runner import knobs_line

    base = RunResult("PAS", 1, "R", 1, 10, 1.0, 10.0, 1.0, 1.0, 1.0, 1.0, 50.0, 10, d_init_ns=4000)
    assert summary([base]) is None
    clean = replace(base, replay={"ios": 10, "lost": 0, "differences": []})
    wrong = replace(base, mode="DPAS", jobs=2, replay={"ios": 5, "lost": 3,
                    "differences": ["request 4 on CPU 0: kernel slept 1 ns, policy 2"]})  # fmt: skip
    assert summary([clean]) == (
        "the kernel's decisions: 10 requests of 1 PAS/DPAS runs replayed through dpas.policy, "
        "0 run(s) with differences"
    )
    line = summary([clean, wrong])
    assert line is not None and "15 requests of 2" in line and "1 run(s) with differences" in line
    assert "DPAS x2: request 4 on CPU 0" in line and line.endswith(
        "3 events lost by the trace ring"
    )
    knobs = {"pas_enabled": "0", "switch_enabled": "0"}
    assert knobs_line({}) is None
    assert knobs_line({"before": knobs, "after": dict(knobs)}) == (
        "the drive's 2 DPAS knobs: as found after the sweep"
    )
    assert knobs_line({"before": knobs, "after": {**knobs, "pas_enabled": "1"}}) == (
        "the drive's DPAS knobs were NOT restored: pas_enabled 0 -> 1"
    )
