"""Emulators: hand-derived page tables, the kernel model against the policy, invariants."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dpas.emulate import EmulateConfig, Model, Outcome, TraceError, emulate
from dpas.emulate.iolog import IoLog
from dpas.emulate.summary import converged_after, summarize
from dpas.emulate.traces import Trace, pattern
from dpas.errors import LimitError
from dpas.policy import Method, Op, PolicyConfig, Request, SwitchParams, make_policy

O, U = Outcome.OVER, Outcome.UNDER


def trace(*values: float) -> Trace:
    return Trace("test", "test", np.array(values, dtype=float))


# the page model's hand-derived tables, I/O for I/O: tests/test_page_model.py


@pytest.mark.parametrize("model", list(Model))
def test_lhp_shelves_after_a_latency_drop_and_pas_does_not(model: Model) -> None:
    step = pattern("step:50:10:5000", 12_000, 1)
    config = EmulateConfig(model=model, epoch_ms=100.0)  # the page's default is Auto
    result = emulate(step, [Method.PAS, Method.LHP], config)
    lhp, pas = result.logs["lhp"], result.logs["pas"]
    # LHP: the sleep learned at 50 µs stays until its window ends, and the app sees it
    after = lhp.epoch[5000]
    same_window = np.flatnonzero(lhp.epoch == after)
    assert same_window[0] < 5000 < same_window[-1] - 500
    shelf = slice(5000, same_window[-1] + 1)
    assert np.all(lhp.sleep_us[shelf] == lhp.sleep_us[4999]) and lhp.sleep_us[4999] > 20
    assert lhp.app_us[shelf].min() > 2 * 10
    # the next window sleeps lower, but on the inflated (shelved) mean, not on the device's 10
    assert 10 < lhp.sleep_us[same_window[-1] + 1] < lhp.sleep_us[4999]
    # PAS: back under the device time within 100 I/Os
    assert pas.sleep_us[5100] < 10 and pas.app_us[5100:6000].mean() < 12.5


def test_kernel_model_makes_the_policys_own_decisions() -> None:
    """Replay the emulator's inputs into a fresh policy, step by step, and compare."""
    device_us = pattern("bimodal:8:40:0.2", 3000, 3).device_us
    switch = SwitchParams(param5=20, param6=50, param7=40)
    for method in (Method.PAS, Method.DPAS):
        config = EmulateConfig(policy=PolicyConfig(switch=switch))
        log = emulate(Trace("t", "t", device_us), [method], config).logs[method.value.lower()]
        policy = make_policy(PolicyConfig(method=method, switch=switch))
        now, request = 0, Request(Op.READ, 4096)
        for i, d in enumerate(np.rint(device_us * 1000).astype(int).tolist()):
            io = policy.on_submit(0, request, now)
            if not io.polled:
                assert Outcome(log.outcome[i]) == Outcome.INT
                app = d + 2000
                policy.on_complete(io, now + app)
            else:
                sleep = policy.on_wait_start(io, now)
                assert log.sleep_us[i] * 1000 == pytest.approx(sleep)
                policy.on_wait_end(io, now + sleep)
                overslept = sleep > 0 and d <= sleep + 2000
                app = sleep + 2000 if overslept else d
                policy.on_complete(io, now + app, overslept)
            assert log.app_us[i] * 1000 == pytest.approx(app)
            now += app
        if method is Method.DPAS:
            assert {Outcome(o) for o in log.outcome} >= {O, U, Outcome.POLL}


def test_int_and_cp_cost_what_the_issue_says() -> None:
    config = EmulateConfig(int_overhead_us=3)
    result = emulate(trace(10, 20), [Method.INT, Method.CP], config)
    assert result.logs["int"].app_us.tolist() == [13, 23]
    assert result.logs["int"].busy_us.tolist() == [3, 3]
    cp = result.logs["cp"]
    assert cp.app_us.tolist() == [10, 20] and cp.busy_us.tolist() == [10, 20]
    summary = {s.method: s for s in result.summaries}
    assert summary["cp"].busy_share == 1.0 and summary["int"].slept_share == pytest.approx(30 / 36)


def test_summary_counts_and_percentiles() -> None:
    result = emulate(trace(10, 10, 3, 3, 8), [Method.PAS], EmulateConfig(model=Model.PAGE))
    s = result.summaries[0]
    # apps 10, 10, 6.24, 5.82, 8 (tests/test_page_model.py); rules for I/Os 1..4 only
    assert s.ios == 5 and s.oversleep == pytest.approx(0.4) and s.undersleep == pytest.approx(0.6)
    assert s.cases == {"over_over": 1, "over_under": 1, "under_over": 1, "under_under": 1}
    assert s.app_p50_us == pytest.approx(8.0) and s.device_mean_us == pytest.approx(6.8)


def test_convergence_needs_a_hundred_close_sleeps_in_a_row() -> None:
    device = np.full(300, 10.0)
    sleep = np.full(300, 10.0)
    sleep[:50] = 5.0
    sleep[120] = 12.0  # one miss restarts the count
    assert converged_after(sleep, device) == 121
    assert converged_after(sleep[:150], device[:150]) is None
    assert converged_after(np.full(300, 9.0), device) == 0  # within 10%


def test_constant_trace_converges_under_the_kernel_model() -> None:
    # with no context-switch overhead PAS settles on the device time itself (from d_init)
    result = emulate(pattern("constant:20", 5000, 1), [Method.PAS], EmulateConfig(track=True))
    after = result.summaries[0].converged_after
    assert after is not None and 0 < after < 200


def test_page_model_refuses_methods_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="page model has pas, lhp, cp, int"):
        emulate(trace(1), [Method.EHP], EmulateConfig(model=Model.PAGE))
    with pytest.raises(ValueError, match="--track"):
        emulate(trace(1), [Method.LHP], EmulateConfig(track=True))


methods = st.lists(st.sampled_from(Method.policies()), min_size=1, max_size=3, unique=True)
values = st.lists(st.floats(0.5, 500), min_size=1, max_size=400)


@settings(max_examples=40, deadline=None)
@given(values=values, chosen=methods, page=st.booleans(), cs=st.floats(0, 5))
def test_app_latency_covers_the_device_and_busy_plus_slept_is_the_wait(
    values: list[float], chosen: list[Method], page: bool, cs: float
) -> None:
    model = Model.PAGE if page else Model.KERNEL
    if page:
        chosen = [m for m in chosen if m in (Method.PAS, Method.LHP, Method.CP, Method.INT)]
        if not chosen:
            return
    config = EmulateConfig(model=model, cs_overhead_us=cs, epoch_ms=0.5)
    result = emulate(trace(*values), chosen, config)
    for log in result.logs.values():
        # the kernel model works in whole ns: device times are rounded to them
        assert np.all(log.app_us >= log.device_us - 5e-4)
        assert np.allclose(log.busy_us + log.slept_us, log.app_us)
        assert np.all(log.busy_us >= 0) and np.all(log.slept_us >= 0)
    for s in result.summaries:
        assert s.busy_share + s.slept_share == pytest.approx(1.0)


def test_page_lhp_crosses_millions_of_epochs_in_one_io() -> None:
    """The epoch boundary was once stepped to, one epoch at a time: a 1e14 µs I/O (or an
    infinite first sleep) never got there. 10 s I/Os in 1 ns epochs cross 1e10 epochs each;
    the page restarts its epoch clock at 0 instead, so each closes one epoch."""
    config = EmulateConfig(model=Model.PAGE, epoch_ms=1e-6, initial_sleep_us=1e7)
    start = time.perf_counter()
    log = emulate(trace(1e7, 1e7, 5.0), [Method.LHP], config).logs["lhp"]
    assert time.perf_counter() - start < 10  # a hang guard, not a speed test
    assert log.epoch.tolist() == [0, 1, 2] and log.sleep_us[1] == pytest.approx(0.5 * (1e7 + 2))


@pytest.mark.parametrize("model", list(Model))
@pytest.mark.parametrize(
    "values", [(0.0, 0.0, 0.0), (1e-300, 1e-300), (10.0, 1e18), (10.0, np.nan)]
)
def test_emulate_refuses_traces_that_are_no_device_times(
    model: Model, values: tuple[float, ...]
) -> None:
    """A trace of zeros divided by zero in the summary; 1e18 µs overflowed the kernel model's
    int64 ns into negative latencies; a trace built in code is held to the readers' rule."""
    with pytest.raises(TraceError, match="is not a device time"):
        emulate(trace(*values), [Method.PAS, Method.CP], EmulateConfig(model=model))


def test_emulate_refuses_an_empty_trace() -> None:
    with pytest.raises(TraceError, match="no device times"):
        emulate(trace(), [Method.CP], EmulateConfig())


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("initial_sleep_us", np.inf),
        ("initial_sleep_us", -1.0),
        ("cs_overhead_us", np.nan),
        ("int_overhead_us", -1.0),
        ("up", np.nan),
        ("dn", 1.5),
        ("attenuation", 2.0),
        ("epoch_ms", np.inf),
        ("epoch_ms", 0.0),
    ],
)
def test_config_refuses_numbers_out_of_range(field: str, value: float) -> None:
    with pytest.raises(LimitError, match="--" + field.replace("_", "-")):
        EmulateConfig(**{field: value})  # type: ignore[arg-type]


def _log(app: list[float]) -> IoLog:
    n = len(app)
    zeros, a = np.zeros(n), np.array(app, dtype=float)
    codes = np.full(n, int(Outcome.POLL), dtype=np.int8)
    return IoLog(a, zeros, zeros, a, a, zeros, codes, np.full(n, -1, np.int8), np.zeros(n, int))


@pytest.mark.parametrize("app", [[], [0.0, 0.0]])
def test_statistics_of_nothing_are_none_not_nan(app: list[float]) -> None:
    """busy_share of a wait of no time was 0/0; the mean of no I/Os is NaN in numpy."""
    s = summarize("cp", _log(app))
    assert s.busy_share is None and s.slept_share is None
    if not app:
        assert s.app_mean_us is None and s.app_p99_us is None and s.oversleep is None
    json.dumps(asdict(s), allow_nan=False)  # raises on NaN or inf


def test_records_are_strict_json() -> None:
    result = emulate(
        pattern("bimodal:0.001:1e7:0.5", 300, 1), list(Method.policies()), EmulateConfig()
    )
    text = json.dumps(result.records(), allow_nan=False)
    assert json.loads(text)["trace"]["ios"] == 300


def test_the_figure_draws_each_methods_log_and_rule_counts(tmp_path: Path) -> None:
    """The plotted data read back from the figure: per method its device, sleep and app
    latency over the span and the counts of the four update rules."""
    from dpas.policy import Case
    from dpas.reports.emulation_figure import plot_emulation

    result = emulate(pattern("step:50:10:300", 600, 1), [Method.PAS, Method.LHP], EmulateConfig())
    fig = plot_emulation(result, tmp_path / "f.png", (200, 400))
    assert (tmp_path / "f.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    axes = fig.axes
    for row, (method, log) in enumerate(result.logs.items()):
        lines = {line.get_label(): line for line in axes[2 * row].get_lines()}
        cut = slice(200, 400)
        assert list(lines["device time (trace)"].get_xdata()) == list(range(200, 400))
        np.testing.assert_array_equal(lines["device time (trace)"].get_ydata(), log.device_us[cut])
        np.testing.assert_array_equal(lines["app latency"].get_ydata(), log.app_us[cut])
        slept = log.sleep_us[cut] > 0
        assert ("sleep" in lines) == bool(slept.any()), method
        if method == "pas":
            np.testing.assert_array_equal(
                lines["sleep"].get_ydata(), np.where(slept, log.sleep_us[cut], np.nan)
            )
        heights = [bar.get_height() for bar in axes[2 * row + 1].patches]
        assert heights == [result.summaries[row].cases[c.label] for c in Case], method
        assert (sum(heights) > 0) == (method == "pas")  # LHP adapts by windows, not the rules
