"""The page model against the lab's pages, I/O for I/O, on short traces derived by hand.

The rules (reference §2, last paragraph, and §3): wake = sleep + cs; UNDER if the device time
> wake (app = device time), else OVER (app = wake). PAS starts from the results (over, under)
with adjust 1 and applies that rule before I/O 0 (adj = 1 + UP); after each I/O it applies
the rule of (previous result, this result) and multiplies the sleep; adjust <= 0 becomes 0.001.
I/O i's case is the pair (i-1, i); I/O 0's is applied but not counted (blank). Rules:
OO adj -= DN; OU adj = 1 + UP; UO adj = 1 - DN; UU adj += UP. LHP: the sleep is attenuation
x the mean app latency of the last epoch; at a boundary the epoch clock restarts at 0.
Defaults: UP 0.01, DN 0.1, initial sleep 4 µs, cs 2 µs (0 for the tracker), attenuation 0.5.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dpas

from dpas.emulate import EmulateConfig, IoLog, Model, Trace, emulate, load
from dpas.emulate.iolog import NO_CASE
from dpas.emulate.traces import DEFAULT_IOS, read_text
from dpas.policy import Case, Method

O, U = "over", "under"
OO, OU, UO, UU = (c.label for c in Case)
NONE = ""  # I/O 0: no rule counted


def trace(*values: float) -> Trace:
    return Trace("hand", "hand", np.array(values, dtype=float))


def page(**kwargs: object) -> EmulateConfig:
    return EmulateConfig(model=Model.PAGE, **kwargs)  # type: ignore[arg-type]


def table(log: IoLog) -> list[tuple[float, float, float, str, str, int]]:
    """(sleep, wake, app, result, rule, epoch) per I/O, as the pages show them."""
    labels = {c.value: c.label for c in Case} | {NO_CASE: NONE}
    results = {0: O, 1: U, 2: "poll", 3: "int"}
    return [
        (s, w, a, results[o], labels[c], e)
        for s, w, a, o, c, e in zip(
            log.sleep_us.tolist(),
            log.wake_us.tolist(),
            log.app_us.tolist(),
            log.outcome.tolist(),
            log.case.tolist(),
            log.epoch.tolist(),
            strict=True,
        )
    ]


def assert_table(log: IoLog, expected: list[tuple[float, float, float, str, str, int]]) -> None:
    got = table(log)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert g[3:] == e[3:], (i, g, e)
        assert g[:3] == pytest.approx(e[:3], rel=1e-12), (i, g, e)


def test_pas_first_sleep_is_init_times_one_plus_up_and_rules_follow() -> None:
    log = emulate(trace(10, 10, 3, 3, 8), [Method.PAS], page()).logs["pas"]
    assert_table(
        log,
        [
            # start (over, under): adj = 1 + 0.01; sleep 4 x 1.01 = 4.04; 10 > 6.04: under
            (4.04, 6.04, 10.0, U, NONE, -1),  # (start's under, under) = UU: adj 1.02
            (4.1208, 6.1208, 10.0, U, UU, -1),  # 4.04 x 1.02; UU: adj 1.03
            (4.244424, 6.244424, 6.244424, O, UO, -1),  # 4.1208 x 1.03; 3 <= wake; adj 0.9
            (3.8199816, 5.8199816, 5.8199816, O, OO, -1),  # x 0.9; OO: adj 0.9 - 0.1 = 0.8
            (3.05598528, 5.05598528, 8.0, U, OU, -1),  # x 0.8; 8 > 5.056: OU (adj 1.01)
        ],
    )


def test_pas_rule_counts_are_for_ios_1_to_n_minus_1() -> None:
    # the same five I/Os: one of each rule, n - 1 = 4 in all; I/O 0's UU is not counted
    result = emulate(trace(10, 10, 3, 3, 8), [Method.PAS], page())
    s = result.summaries[0]
    assert s.cases == {OO: 1, OU: 1, UO: 1, UU: 1}
    assert s.oversleep == pytest.approx(0.4) and s.undersleep == pytest.approx(0.6)


def test_tracker_is_pas_without_the_context_switch() -> None:
    # cs 0: wake = sleep. 5 > 4.04: under (with cs 2 it would wake at 6.04, over)
    log = emulate(trace(5, 3, 4.5), [Method.PAS], page(track=True)).logs["pas"]
    assert_table(
        log,
        [
            (4.04, 4.04, 5.0, U, NONE, -1),  # UU: adj 1.02
            (4.1208, 4.1208, 4.1208, O, UO, -1),  # 3 <= 4.1208: over; adj 0.9
            (3.70872, 3.70872, 4.5, U, OU, -1),  # 4.1208 x 0.9; 4.5 > 3.70872
        ],
    )


def test_adjust_clamps_to_a_thousandth_not_to_one() -> None:
    # DN 0.5: UO sets adj 1 - 0.5 = 0.5, then OO takes it to 0.5 - 0.5 = 0 -> 0.001
    # (the kernel model would reset it to 1 and sleep 2.0604 again)
    log = emulate(trace(10, 3, 3, 3, 1), [Method.PAS], page(dn=0.5)).logs["pas"]
    assert_table(
        log,
        [
            (4.04, 6.04, 10.0, U, NONE, -1),  # UU: adj 1.02
            (4.1208, 6.1208, 6.1208, O, UO, -1),  # adj 0.5
            (2.0604, 4.0604, 4.0604, O, OO, -1),  # adj 0 -> 0.001
            (0.0020604, 2.0020604, 3.0, U, OU, -1),  # 2.0604 x 0.001; 3 > 2.002; adj 1.01
            (0.002081004, 2.002081004, 2.002081004, O, UO, -1),  # 1 <= wake
        ],
    )


def test_initial_sleep_0_stays_0_and_still_gets_rules() -> None:
    # 0 x 1.01 = 0, and PAS only multiplies it; each I/O still wakes at 0 + cs = 2
    log = emulate(trace(10, 1, 1, 5), [Method.PAS], page(initial_sleep_us=0.0)).logs["pas"]
    assert_table(
        log,
        [
            (0.0, 2.0, 10.0, U, NONE, -1),
            (0.0, 2.0, 2.0, O, UO, -1),  # 1 <= 2: over, app = wake
            (0.0, 2.0, 2.0, O, OO, -1),
            (0.0, 2.0, 5.0, U, OU, -1),
        ],
    )
    assert log.busy_us.tolist() == [10.0, 2.0, 2.0, 5.0] and log.slept_us.tolist() == [0] * 4


def test_lhp_epoch_clock_restarts_at_0_at_each_boundary() -> None:
    # epoch 20 µs; sleep 4 until the first epoch closes, then 0.5 x that epoch's mean app
    log = emulate(trace(10, 10, 30, 5, 5, 5), [Method.LHP], page(epoch_ms=0.02)).logs["lhp"]
    assert_table(
        log,
        [
            (4.0, 6.0, 10.0, U, NONE, 0),  # clock 10
            (4.0, 6.0, 10.0, U, UU, 0),  # clock 20 >= 20: mean 10 -> sleep 5, clock 0
            (5.0, 7.0, 30.0, U, UU, 1),  # clock 30: mean 30 -> sleep 15; 10 µs over dropped
            (15.0, 17.0, 17.0, O, UO, 2),  # clock 17: on a fixed grid (60) epoch 2 ends here
            (15.0, 17.0, 17.0, O, OO, 2),  # clock 34: mean 17 -> sleep 8.5
            (8.5, 10.5, 10.5, O, OO, 3),
        ],
    )


def test_lhp_auto_epoch_is_the_total_device_time_over_20() -> None:
    # 40 I/Os of 10 µs: 400 µs / 20 = 20 µs = 0.02 ms, so each epoch closes every 2nd I/O
    # (sleep 4, wake 6, app 10; then 0.5 x 10 = 5, wake 7, app 10 ...): 20 epochs
    result = emulate(trace(*[10.0] * 40), [Method.LHP], page())
    log = result.logs["lhp"]
    assert result.epoch_ms == pytest.approx(0.02) and result.config.epoch_auto
    assert log.epoch.tolist() == [i // 2 for i in range(40)]
    assert log.sleep_us.tolist() == [4.0, 4.0] + [5.0] * 38
    config = result.records()["config"]
    assert isinstance(config, dict)
    assert config["epoch_ms"] == pytest.approx(0.02) and config["epoch_auto"] is True


def test_epoch_defaults_auto_for_the_page_100_ms_for_the_kernel() -> None:
    t = trace(10, 20)
    assert emulate(t, [Method.LHP], page()).epoch_ms == pytest.approx(30 / 20 / 1000)
    kernel = emulate(t, [Method.LHP], EmulateConfig())
    assert kernel.epoch_ms == 100 and not kernel.config.epoch_auto
    assert EmulateConfig().policy_for(Method.LHP).lhp_window_ns == 100_000_000
    assert emulate(t, [Method.LHP], page(epoch_ms=5.0)).records()["config"]["epoch_ms"] == 5.0


def test_page_model_does_not_cycle_a_file(tmp_path: Path) -> None:
    f = tmp_path / "t.txt"
    f.write_text("10\n20\n30\n")
    assert len(load(str(f), cycle=False)) == 3  # the page model's load
    assert len(load("zssd", cycle=False)) == 1000
    assert len(load(str(f))) == DEFAULT_IOS  # the kernel model still cycles
    assert load(str(f), ios=5, cycle=False).device_us.tolist() == [10, 20, 30, 10, 20]


@pytest.mark.parametrize("fmt", ["auto", "csv"])
def test_a_numeric_first_csv_row_is_data_not_a_header(fmt: str) -> None:
    used, values = read_text("12.5,3\n10,4\n\n7,1\n", "t.csv", fmt)
    assert used == "csv" and values.tolist() == [12.5, 10.0, 7.0]
    _, named = read_text("lat,op\n12.5,3\n", "t.csv", fmt)
    assert named.tolist() == [12.5]  # a header is still a header


def test_a_bad_row_after_a_numeric_first_row_is_still_refused() -> None:
    from dpas.emulate import TraceError

    with pytest.raises(TraceError, match=r"t.csv line 2: 'fast' is not a number"):
        read_text("12.5,3\nfast,4\n", "t.csv", "csv")
    with pytest.raises(TraceError, match=r"t.csv line 1: 0 µs is not a device time"):
        read_text("0,3\n10,4\n", "t.csv", "csv")


def test_cli_page_model_per_io_with_initial_sleep_0(tmp_path: Path) -> None:
    """The whole path as a user runs it: a header-less CSV (its first row is an I/O), no
    cycling, --initial-sleep-us 0 and the rule codes in the per-I/O CSV."""
    f = tmp_path / "t.csv"
    f.write_text("10,a\n1,b\n1,c\n5,d\n")
    per_io = tmp_path / "ios.csv"
    out = run_dpas(
        "emulate",
        "--model",
        "page",
        "--method",
        "pas,lhp",
        "--trace",
        str(f),
        "--initial-sleep-us",
        "0",
        "--per-io",
        str(per_io),
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    text = " ".join(out.stdout.split())  # rich wraps at 80 columns
    assert f"trace t.csv ({f} (csv)): 4 I/Os" in text and "cycled" not in text
    # auto epoch: (10 + 1 + 1 + 5) / 20 = 0.85 µs = 0.00085 ms
    assert "LHP epoch: 0.00085 ms (auto: the trace's total device time / 20)" in text
    rows = list(csv.DictReader(per_io.open()))
    pas = [(r["sleep_us"], r["wake_us"], r["app_us"], r["result"], r["case"]) for r in rows[:4]]
    assert pas == [
        ("0.000", "2.000", "10.000", U, NONE),
        ("0.000", "2.000", "2.000", O, UO),
        ("0.000", "2.000", "2.000", O, OO),
        ("0.000", "2.000", "5.000", U, OU),
    ]
    # LHP: every app latency (>= 2) outlasts a 0.85 µs epoch, so each I/O is one epoch and
    # the next sleeps 0.5 x its app: 0 (wake 2, under) -> 5 (wake 7 >= 1: over, app 7)
    # -> 3.5 (wake 5.5, over) -> 2.75 (wake 4.75 < 5: under, app 5)
    lhp = [(r["sleep_us"], r["app_us"], r["result"], r["epoch"]) for r in rows[4:]]
    assert lhp == [
        ("0.000", "10.000", U, "0"),
        ("5.000", "7.000", O, "1"),
        ("3.500", "5.500", O, "2"),
        ("2.750", "5.000", U, "3"),
    ]


@pytest.mark.parametrize("value", ["fast", "0", "-1", "nan", "inf", "3600001", ""])
def test_cli_epoch_ms_takes_a_number_or_auto(value: str) -> None:
    out = run_dpas("emulate", "--model", "page", "--ios", "5", "--epoch-ms", value, timeout=60)
    assert out.returncode == 2 and out.stdout == "", out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpas: error: ")
    assert "--epoch-ms" in lines[0] and "expected a number" in lines[0] and "or auto" in lines[0]


def test_cli_epoch_ms_auto_is_the_page_models() -> None:
    out = run_dpas("emulate", "--epoch-ms", "auto", "--ios", "5", timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith("dpas: error: --epoch-ms auto: ") and "--model page" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
