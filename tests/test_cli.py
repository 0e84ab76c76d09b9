"""The dpas command as a user runs it: a real process, its output and exit code."""

from __future__ import annotations

import json

import pytest
from conftest import run_dpas

from dpas.policy.demo import DPAS_DEMO_PERIODS, demo_runs
from dpas.policy.switch import EDGES


def test_demo_prints_both_runs_step_by_step() -> None:
    out = run_dpas("policy", "demo")
    assert out.returncode == 0, out.stderr
    assert "PAS, script 1U*10" in out.stdout and "DPAS, script" in out.stdout
    for change in ("PAS->CP", "CP->PAS", "PAS->OL", "OL->INT", "INT->OL", "OL->PAS"):
        assert change in out.stdout


def test_demo_json_is_the_same_records() -> None:
    out = run_dpas("policy", "demo", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["schema"] == "dpas.policy-demo/1"
    runs = {r["method"]: r for r in data["runs"]}
    assert runs["DPAS"]["switch"]["param5"] == DPAS_DEMO_PERIODS["param5"]
    assert len(runs["PAS"]["steps"]) == len(demo_runs()[0].steps)
    assert {s["case"] for s in runs["PAS"]["steps"]} == {None, "OO", "OU", "UO", "UU"}


def test_demo_covers_every_edge_of_the_state_machine() -> None:
    dpas_run = demo_runs()[1]
    seen = {tuple(t.split("->")) for s in dpas_run.steps for t in s.transitions}
    assert seen == {(a.name, b.name) for a, b in EDGES}


def test_help_lists_only_working_commands() -> None:
    out = run_dpas("--help")
    assert out.returncode == 0
    listed = [line.split()[0] for line in out.stdout.split("Commands:")[1].strip().splitlines()]
    assert listed == [
        "bench",
        "compare",
        "doctor",
        "emulate",
        "policy",
        "restore",
        "sweep",
        "tune",
        "validate",
        "vm",
        "waf",
    ]
    for args in (["policy"], [], ["emulate", "--help"], ["policy", "demo", "--help"]):
        assert run_dpas(*args).returncode == 0


@pytest.mark.parametrize(
    "args",
    [["nonsense"], ["policy", "demo", "--bogus"], ["policy", "frobnicate"], ["--jobs"]],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str]) -> None:
    out = run_dpas(*args)
    assert out.returncode == 2
    assert out.stderr.startswith("dpas: error: ")
    assert len(out.stderr.strip().splitlines()) == 1
    assert "Traceback" not in out.stderr and out.stdout == ""
