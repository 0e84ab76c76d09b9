"""``dpas emulate`` as a user runs it (in-process for content, a real process for exits)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from conftest import run_dpas

from dpas.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    main(["emulate", *args])
    return capsys.readouterr().out


def test_compare_pas_and_lhp_on_zssd_with_a_figure(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    figure = tmp_path / "out.png"
    out = run(capsys, "--method", "pas,lhp", "--trace", "zssd", "--plot", str(figure))
    assert "trace zssd (built-in zssd, cycled to 20000 I/Os): 20000 I/Os" in out
    assert "│ pas " in out and "│ lhp " in out and f"figure: {figure}" in out
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and figure.stat().st_size > 20_000


def test_svg_figure_with_a_span(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    figure = tmp_path / "out.svg"
    run(
        capsys,
        "--trace",
        "step:50:10:300",
        "--ios",
        "600",
        "--method",
        "all",
        "--plot",
        str(figure),
        "--plot-ios",
        "200:400",
    )
    text = figure.read_text()
    assert text.lstrip().startswith("<?xml") and "I/Os 200-399 of 600" in text


def test_json_records(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(
        run(capsys, "--trace", "constant:30", "--ios", "500", "--method", "pas,cp,int", "--json")
    )
    assert data["schema"] == "dpas.emulate/1"
    assert data["trace"] == {
        "name": "constant:30",
        "source": "pattern constant:30, seed 1",
        "ios": 500,
        "device_mean_us": 30.0,
    }
    assert data["config"]["model"] == "kernel" and data["config"]["policy"]["pas"]["d_init"] == 100
    methods = {m["method"]: m for m in data["methods"]}
    assert set(methods) == {"pas", "cp", "int"}
    assert methods["int"]["app_mean_us"] == pytest.approx(32.0)
    assert set(methods["pas"]["cases"]) == {"over_over", "over_under", "under_over", "under_under"}


def test_page_model_options_reach_the_run(capsys: pytest.CaptureFixture[str]) -> None:
    data = json.loads(
        run(
            capsys,
            "--model",
            "page",
            "--trace",
            "constant:3",
            "--ios",
            "2",
            "--method",
            "pas",
            "--initial-sleep-us",
            "5",
            "--cs-overhead-us",
            "1",
            "--json",
        )
    )
    pas = data["methods"][0]
    assert pas["oversleep"] == 1.0 and pas["app_mean_us"] == pytest.approx((6 + 5 * 0.9 + 1) / 2)
    assert "policy" not in data["config"] and data["config"]["initial_sleep_us"] == 5


def test_per_io_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "ios.csv"
    run(
        capsys,
        "--trace",
        "constant:30",
        "--ios",
        "50",
        "--method",
        "pas,lhp",
        "--per-io",
        str(path),
    )
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 100 and rows[0]["method"] == "pas" and rows[50]["method"] == "lhp"
    assert list(rows[0]) == [
        "method",
        "io",
        "device_us",
        "sleep_us",
        "wake_us",
        "app_us",
        "busy_us",
        "slept_us",
        "result",
        "case",
        "epoch",
    ]
    assert {r["result"] for r in rows} <= {"over", "under", "poll", "int"}
    assert rows[1]["case"] in ("over_over", "over_under", "under_over", "under_under")


def test_fio_log_as_the_trace(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "x_clat.1.log"
    log.write_text("".join(f"{i}, {20000 + i}, 0, 4096, 0\n" for i in range(10)))
    data = json.loads(run(capsys, "--trace", str(log), "--ios", "10", "--method", "cp", "--json"))
    assert data["methods"][0]["device_mean_us"] == pytest.approx(20.0045)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "pas,turbo"], "--method 'turbo': expected a list of pas, lhp"),
        (["--model", "page", "--method", "dpas"], "method dpas: the page model has"),
        (["--model", "page", "--d-init", "500"], "--d-init applies to the other model"),
        (["--attenuation", "0.3"], "--attenuation applies to the other model"),
        (["--trace", "/nonexistent/t.txt"], "trace /nonexistent/t.txt: no such file, built-in"),
        (["--trace", "wobble:3"], "pattern (constant, noisy, ramp, step, bimodal, gaussian)"),
        (["--plot", "x.pdf"], "--plot x.pdf: expected a file name ending in .png or .svg"),
        (["--plot-ios", "9:3"], "--plot-ios 9:3: expected START:END"),
        (["--track", "--method", "pas,lhp"], "--track is the PAS tracker"),
        (["--ios", "0"], "Invalid value for '--ios'"),
        (["--per-io", "/nonexistent/dir/x.csv", "--ios", "5"], "--per-io /nonexistent/dir/x.csv"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], message: str) -> None:
    out = run_dpas("emulate", *args)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpas: error: ") and message in lines[0]
