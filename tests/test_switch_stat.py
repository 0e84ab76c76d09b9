"""switch_stat: the kernel's exact line format, both read forms, round trips."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import Clock, steps
from hypothesis import given
from hypothesis import strategies as st

from dpas.errors import DpasError
from dpas.policy import DpasPolicy, Mode, SwitchParams
from dpas.policy.switch_stat import SwitchStatLine, latest, parse, render

# CPU[%2d] MODE[%d] QD[%2d] param1: %d param2: %d param3: %d polled io: %llu, pas io: %llu, ...
EXPECTED = (
    "CPU[ 0] MODE[1] QD[ 0] param1: 0 param2: 10 param3: 10 "
    "polled io: 10, pas io: 100, ol io: 0, int io: 0\n"
    "CPU[12] MODE[2] QD[ 3] param1: 0 param2: 10 param3: 10 "
    "polled io: 0, pas io: 0, ol io: 0, int io: 0\n"
)

KERNEL_LOG = """\
[  812.044120] nvme nvme0: 2/0/2 default/read/poll queues
[  815.301377] CPU[ 0] MODE[2] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: 170035, pas io: 17100, ol io: 0, int io: 0
[  815.301380] CPU[ 1] MODE[0] QD[ 0] param1: 0 param2: 10 param3: 10 polled io: 1000, pas io: 800, ol io: 2801, int io: 236614
[  900.000001] CPU[ 0] MODE[1] QD[ 0] param1: 0 param2: 10 param3: 30 polled io: 170100, pas io: 17100, ol io: 0, int io: 0
"""


def test_render_matches_the_kernel_format() -> None:
    policy, clock = DpasPolicy(), Clock()
    steps(policy, clock, 110, jobs=1, overslept=False)
    cp_line = SwitchStatLine.of(0, policy.switch_state(0), policy.switch)
    idle = SwitchStatLine(12, Mode.PAS, 3, 0, 10, 10, 0, 0, 0, 0)
    assert render([cp_line, idle]) == EXPECTED


def test_parse_attribute_text_round_trips() -> None:
    lines = parse(EXPECTED)
    assert [(r.cpu, r.mode, r.qd, r.cp_io, r.pas_io) for r in lines] == [
        (0, Mode.CP, 0, 10, 100),
        (12, Mode.PAS, 3, 0, 0),
    ]
    assert render(lines) == EXPECTED
    assert all(r.timestamp is None for r in lines)


def test_parse_kernel_log_with_timestamps_and_noise() -> None:
    lines = parse(KERNEL_LOG)
    assert len(lines) == 3
    assert lines[0].timestamp == pytest.approx(815.301377)
    assert lines[1].totals == {"cp": 1000, "pas": 800, "ol": 2801, "int": 236614}
    now = latest(lines)
    assert sorted(now) == [0, 1]
    assert now[0].mode == Mode.CP and now[0].param3 == 30 and now[0].cp_io == 170100


def test_parse_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="MODE"):
        parse(EXPECTED.replace("MODE[1]", "MODE[7]"))


counts = st.integers(min_value=0, max_value=2**64 - 1)
params = st.integers(min_value=-1, max_value=2**31 - 1)


@given(
    cpu=st.integers(0, 4095),
    mode=st.sampled_from(Mode),
    qd=st.integers(-5, 10_000),
    p=st.tuples(params, params, params),
    io=st.tuples(counts, counts, counts, counts),
)
def test_render_parse_round_trip(
    cpu: int, mode: Mode, qd: int, p: tuple[int, int, int], io: tuple[int, int, int, int]
) -> None:
    line = SwitchStatLine(cpu, mode, qd, *p, *io)
    assert parse(render([line])) == [line]
    stamped = parse(f"[ 1234.500000] {line.render()}")[0]
    assert stamped.timestamp == 1234.5 and stamped.totals == line.totals


def test_params_shown_are_the_policys() -> None:
    policy = DpasPolicy(switch=SwitchParams(param1=2, param2=5, param3=30))
    line = SwitchStatLine.of(3, policy.switch_state(3), policy.switch)
    assert "param1: 2 param2: 5 param3: 30" in line.render()


RECORD = EXPECTED.splitlines()[0]

#: ~1 MB each: the regex was searched from every position of a line, and its leading .*?
#: scanned to the line's end from each: a 40 KB line took 8.8 s, a 1 MB one hours.
ADVERSARIAL = {
    "no record": "x" * 1_000_000,
    "CPU[ only": "CPU[" * 250_000,
    "timestamps": "[ 1.0] " * 140_000,
    "records cut short": (RECORD[:-12] + " ") * 10_000,
    "one long digit run": "[ 1." + "1" * 1_000_000,
    "spaces after int io": RECORD.rpartition(" ")[0] + " " * 1_000_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_parse_is_linear_on_adversarial_input(name: str) -> None:
    text = ADVERSARIAL[name]
    start = time.perf_counter()
    assert parse(text) == []
    assert time.perf_counter() - start < 10  # a hang guard only: it takes milliseconds


def test_parse_finds_a_record_after_a_megabyte_of_noise() -> None:
    noise = "x" * 1_000_000
    lines = parse(f"{noise} {RECORD}\n[ 5.25] {RECORD}\n{noise}\n")
    assert [line.timestamp for line in lines] == [None, 5.25] and lines[0].cp_io == 10


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (RECORD.replace("polled io: 10", "polled io: 18446744073709551616"), "cp_io 1844"),
        (RECORD.replace("polled io: 10", "polled io: " + "9" * 5000), "cp_io 9999"),
        (RECORD.replace("param2: 10", "param2: 2147483648"), "param2 2147483648"),
        (RECORD.replace("QD[ 0]", "QD[-2147483649]"), "qd -2147483649"),
        (RECORD.replace("MODE[1]", "MODE[" + "1" * 5000 + "]"), "MODE 1111"),
        ("[" + "9" * 400 + ".0] " + RECORD, "timestamp 9999"),
    ],
    ids=["u64+1", "5000 digits", "int+1", "int-1", "mode of 5000 digits", "inf timestamp"],
)
def test_parse_refuses_values_the_kernel_cannot_print(line: str, message: str) -> None:
    """int() of 5000 digits was a bare ValueError; a u64 count above 2**64-1 was kept."""
    with pytest.raises(DpasError, match=message) as err:
        parse(line)
    assert len(str(err.value)) < 300  # the line is quoted cut short


def test_the_runner_reads_both_forms_of_its_queue(tmp_path: Path) -> None:
    """dpas bench --device's reader (the guest's too): the attribute's own text where the
    kernel returns it, the kernel log where the read only printed the lines (the artifact)."""
    import subprocess

    from dpas.real.executor import LocalExecutor
    from dpas.real.knobs import QueueKnobs
    from dpas.real.site import Site
    from dpas.real.switch_watch import SwitchWatch

    class LoggingKernel(LocalExecutor):
        def run(self, argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
            assert argv == ["dmesg"]
            return subprocess.CompletedProcess(argv, 0, KERNEL_LOG, "")

    queue = tmp_path / "queue"
    queue.mkdir()
    site = Site.__new__(Site)  # only its queue: no device to resolve here
    site.executor = LoggingKernel()
    site.knobs = QueueKnobs(site.executor, queue)
    watch = SwitchWatch(site, fio=True)
    (queue / "switch_stat").write_text(EXPECTED)
    assert render(watch.lines()) == EXPECTED
    (queue / "switch_stat").write_text("\n")  # the artifact's read
    assert [(r.cpu, r.mode) for r in latest(watch.lines()).values()] == [
        (0, Mode.CP),
        (1, Mode.INT),
    ]
    (queue / "switch_stat").unlink()
    assert watch.lines() == []  # a stock kernel: no switch
