"""The policy demo shows the policy's own decisions (checked in-process, field by field)."""

from __future__ import annotations

import json
from dataclasses import asdict

import pytest

from dpas.cli import main
from dpas.policy import PasParams
from dpas.policy.demo import DPAS_DEMO_PERIODS, DPAS_SCRIPT, PAS_SCRIPT, demo_records, demo_runs


def test_scripts_are_shown_run_length_encoded() -> None:
    pas, dpas = demo_runs()
    assert pas.script == "1U*10 1O*3 1U*1 1O*1 1U*2 1O*7"
    assert dpas.script == "1U*4 1O*6 2O*6 1O*5 1U*12"


def test_pas_rows_follow_the_hand_derived_start() -> None:
    pas = demo_runs()[0]
    assert len(pas.steps) == len(PAS_SCRIPT)
    first = [
        (s.step, s.io, s.cpu, s.sleep_ns, s.case, s.adj, s.dur, s.up, s.dn) for s in pas.steps[:3]
    ]
    assert first == [
        (1, 0, 0, 100, None, None, None, None, None),
        (2, 0, 0, 101, "UU", 1_010_000, 101, 10_000, 100_000),
        (3, 0, 0, 103, "UU", 1_020_000, 103, 10_000, 100_000),
    ]
    # under then over at dur 166: adj 0.9 -> 149; the rates cool down
    row = pas.steps[11]
    assert (row.case, row.adj, row.dur, row.up, row.dn, row.floored) == (
        "UO",
        900_000,
        149,
        9_000,
        90_000,
        False,
    )
    assert [s.feedback for s in pas.steps] == [fb for _, fb in PAS_SCRIPT]
    assert all(s.mode is None and s.qd is None and s.transitions == [] for s in pas.steps)
    assert any(s.floored for s in pas.steps)
    assert all(
        s.floored == (s.case is not None and s.sleep_ns == 100 and s.floored) for s in pas.steps
    )


def test_dpas_rows_show_queue_depth_modes_and_transitions() -> None:
    dpas = demo_runs()[1]
    assert len(dpas.steps) == sum(jobs for jobs, _ in DPAS_SCRIPT)
    by_step: dict[int, list] = {}
    for s in dpas.steps:
        by_step.setdefault(s.step, []).append(s)
    assert [len(v) for v in by_step.values()] == [jobs for jobs, _ in DPAS_SCRIPT]
    for rows in by_step.values():
        assert all(r.transitions == [] for r in rows[:-1])
        for r in rows:
            if not r.polled:  # forced interrupt I/O
                assert (r.mode, r.qd, r.sleep_ns, r.feedback) == ("INT", None, 0, None)
            elif r.sleep_ns == 0:  # CP: no sleep, no feedback, queue depth untouched...
                # ...except by the wait that was still in PAS when it switched to CP
                assert r.feedback is None and r.qd == (1 if r.transitions == ["PAS->CP"] else 0)
            else:
                assert r.feedback is not None
    two = by_step[11]
    assert [(r.io, r.mode, r.qd, r.sleep_ns) for r in two] == [
        (0, "PAS", 1, 100),
        (1, "PAS", 2, 100),
    ]
    assert by_step[4][-1].transitions == ["PAS->CP"] and by_step[4][-1].sleep_ns == 0
    assert by_step[10][-1].transitions == ["CP->PAS"] and by_step[10][-1].case == "UU"


def test_records_carry_schema_and_parameters() -> None:
    data = demo_records()
    assert data["schema"] == "dpas.policy-demo/1"
    runs = data["runs"]
    assert [r["method"] for r in runs] == ["PAS", "DPAS"]
    assert runs[0]["pas"] == asdict(PasParams()) and runs[0]["switch"] is None
    assert {k: runs[1]["switch"][k] for k in DPAS_DEMO_PERIODS} == DPAS_DEMO_PERIODS
    # DPAS's first I/O, by hand: one job (queue depth 1) starting in PAS, sleeping d_init
    # (100 ns) with no adjustment yet (its bucket's first), under-slept as the script says
    assert runs[1]["steps"][0] == {
        "step": 1, "io": 0, "cpu": 0, "mode": "PAS", "polled": True, "qd": 1, "sleep_ns": 100,
        "case": None, "adj": None, "dur": None, "up": None, "dn": None, "floored": False,
        "feedback": "U", "transitions": [],
    }  # fmt: skip


def test_cli_demo_json_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    """The printed JSON, checked against the scripts and the hand-derived PAS start."""
    main(["policy", "demo", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert (data["schema"], data["rules"]) == ("dpas.policy-demo/1", "lab")
    pas, dpas = data["runs"]
    assert (pas["method"], pas["script"]) == ("PAS", "1U*10 1O*3 1U*1 1O*1 1U*2 1O*7")
    assert (dpas["method"], dpas["script"]) == ("DPAS", "1U*4 1O*6 2O*6 1O*5 1U*12")
    assert len(pas["steps"]) == 10 + 3 + 1 + 1 + 2 + 7
    assert len(dpas["steps"]) == 4 + 6 + 2 * 6 + 5 + 12  # one row per I/O: two in 2O steps
    first = [(s["step"], s["sleep_ns"], s["case"], s["adj"], s["dur"]) for s in pas["steps"][:3]]
    assert first == [(1, 100, None, None, None), (2, 101, "UU", 1_010_000, 101),
                     (3, 103, "UU", 1_020_000, 103)]  # fmt: skip


def test_cli_demo_tables_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    main(["policy", "demo"])
    out = capsys.readouterr().out
    assert "PAS, script 1U*10 1O*3" in out and "DPAS, script 1U*4" in out
    assert "1010000" in out and "PAS->CP" in out and "param5 4" in out


def test_cli_bad_option_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["policy", "demo", "--nope"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err == "dpas: error: No such option '--nope'. (see 'dpas policy demo --help')\n"
