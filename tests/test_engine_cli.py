"""`dpas bench --device FILE --engine dpas` as a user runs it on this machine (no polled
drive: INT completes, polled modes are refused with the reason), its option checks, and
Ctrl-C keeping what was measured."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import run_dpas

from dpas.engine.iolog import LOG_DTYPE

SIZE = 8 << 20


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.img"
    path.write_bytes(np.random.default_rng(3).bytes(SIZE))
    return path


def test_int_through_the_engine_writes_records_and_logs(tmp_path: Path, data_file: Path) -> None:
    out = tmp_path / "out"
    done = run_dpas(
        "bench", "INT", "--device", str(data_file), "--engine", "dpas", "--jobs", "1,2",
        "--runtime", "0.3", "--d-init", "5000", "--size", "8m", "--log", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "results.json").read_text())
    assert saved["backend"] == "engine" and saved["refused"] == {}
    records = saved["records"]
    assert [(r["mode"], r["jobs"]) for r in records] == [("INT", 1), ("INT", 2)]
    for r in records:
        assert r["backend"] == "engine" and r["engine"] == "dpas engine"
        assert r["ios"] > 0 and r["iops"] > 0 and 0 < r["cpu_pct"] <= 100
        assert r["ctx"] == r["ctx_voluntary"] + r["ctx_involuntary"] > 0
        assert r["overslept"] == r["underslept"] == r["sleeps_taken"] == 0
        log = np.load(r["log"])
        assert log.dtype == LOG_DTYPE and len(log) == r["ios"]
    assert "INT" in done.stdout and (out / "results.csv").exists()


def test_polled_modes_on_a_disk_without_poll_queues_are_refused(
    tmp_path: Path, data_file: Path
) -> None:
    done = run_dpas(
        "bench", "CP", "PAS", "HYB", "--device", str(data_file), "--engine", "dpas",
        "--jobs", "1", "--runtime", "0.2", "--d-init", "5000", "--size", "8m",
        "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().startswith("dpas: error: every mode was refused: CP needs polled")
    assert "no poll queues" in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["INT", "--engine", "dpas"], "--engine means nothing without --device"),
        (["INT", "--log"], "--log keeps the engine's per-I/O logs: it needs --engine dpas"),
        (["INT", "--device", "X", "--engine", "dpas", "--ioengine", "sync"], "--ioengine means"),
        (["INT", "--device", "X", "--engine", "dpas", "--ios", "9"], "--ios means nothing"),
        (["INT", "--device", "X", "--engine", "nope"], "'nope' is not one of 'fio', 'dpas'"),
    ],
)
def test_engine_options_are_checked(args: list[str], message: str) -> None:
    done = run_dpas("bench", *args)
    assert done.returncode == 2
    assert message in done.stderr and len(done.stderr.strip().splitlines()) <= 3


def test_the_simulator_refuses_hyb_and_runs_the_rest(tmp_path: Path) -> None:
    done = run_dpas(
        "bench", "HYB", "CP", "--jobs", "1", "--runtime", "0.01", "--out", str(tmp_path)
    )
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "results.json").read_text())
    assert "no model of io_uring's hybrid polling" in saved["refused"]["HYB"]
    assert [r["mode"] for r in saved["records"]] == ["CP"]


def wait_for_progress(master: int, text: bytes, proc: subprocess.Popen[str]) -> None:
    """Read the progress bar from the pty until it shows ``text`` (a run finished, as a user
    sees it), however slowly the machine started the command; with no ``text``, until the
    command exits (a terminal nobody reads would block its writes)."""
    seen, deadline = b"", time.monotonic() + 120
    while text not in seen if text else proc.poll() is None:
        assert (proc.poll() is None or not text) and time.monotonic() < deadline, seen[-500:]
        if select.select([master], [], [], 0.2)[0]:
            try:
                seen += os.read(master, 4096)
            except OSError:  # the command has closed the terminal
                return


def test_ctrl_c_stops_the_engine_and_keeps_finished_runs(tmp_path: Path, data_file: Path) -> None:
    out = tmp_path / "out"
    master, terminal = pty.openpty()
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "dpas", "bench", "INT", "--device", str(data_file),
            "--engine", "dpas", "--jobs", "1,2", "--runtime", "4", "--d-init", "5000",
            "--size", "8m", "--out", str(out),
        ],
        stdout=terminal,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TERM": "xterm"},
    )  # fmt: skip
    os.close(terminal)
    try:
        wait_for_progress(master, b"1/2", proc)  # the first run is over; the second under way
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        wait_for_progress(master, b"", proc)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
    assert time.monotonic() - sent < 5  # the jobs look at the stop every 20 ms
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1].startswith("dpas: error: stopped by SIGINT")
    saved = json.loads((out / "results.json").read_text())
    assert [(r["mode"], r["jobs"]) for r in saved["records"]] == [("INT", 1)]
    assert "stopped by SIGINT" in saved["ended_early"]
