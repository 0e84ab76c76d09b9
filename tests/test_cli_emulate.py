"""``dpas emulate`` as a user runs it (in-process for content, a real process for exits)."""

from __future__ import annotations

import csv
import json
import subprocess
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
    # sleep 5 x 1.01 = 5.05, wake 6.05 >= 3: over; UO: adj 0.9, sleep 4.545, wake 5.545: over
    pas = data["methods"][0]
    assert pas["oversleep"] == 1.0 and pas["app_mean_us"] == pytest.approx((6.05 + 5.545) / 2)
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


def assert_one_line_error(out: subprocess.CompletedProcess[str], *words: str) -> str:
    """Exit 2, nothing on stdout, one line on stderr starting with dpas: error:."""
    assert out.returncode == 2, out.stderr
    assert out.stdout == "" and "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dpas: error: "), out.stderr
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["--up", "nan"],
        ["--up", "1.5"],
        ["--dn", "inf"],
        ["--dn", "-0.1"],
        ["--epoch-ms", "inf"],
        ["--epoch-ms", "0"],
        ["--epoch-ms", "3600001"],
        ["--model", "page", "--initial-sleep-us", "inf"],  # hung the page model
        ["--model", "page", "--initial-sleep-us", "-0.5"],
        ["--model", "page", "--epoch-ms", "auto2"],
        ["--model", "page", "--attenuation", "nan"],
        ["--model", "page", "--attenuation", "1.5"],
        ["--cs-overhead-us", "nan"],
        ["--cs-overhead-us", "1e8"],
        ["--int-overhead-us", "-inf"],
        ["--ios", "nan"],
        ["--ios", "1e3"],
        ["--ios", "1000000001"],
        ["--seed", "-1"],  # was a traceback from numpy
        ["--seed", "18446744073709551616"],
        ["--seed", "1.5"],
        ["--d-init", "0"],
        ["--d-init", "4294967296"],  # pas_d_init is a u32
        ["--adaptive", "3"],
        ["--adaptive", "١"],  # click's int() takes other scripts' digits
        ["--io-poll-delay", "-1"],
        ["--io-poll-delay", "1e3"],
        ["--param5", "nan"],
    ],
    ids=" ".join,
)
def test_numeric_options_are_ranged(args: list[str]) -> None:
    option = next(a for a in args if a.startswith("--") and a != "--model")
    message = assert_one_line_error(run_dpas("emulate", "--ios", "5", *args, timeout=60), option)
    assert "expected" in message


BAD_FILES = {
    "zeros.txt": ("0\n0\n0\n", "line 1: 0 µs is not a device time"),
    "tiny.txt": ("1e-300\n", "line 1: 1e-300 µs is not a device time"),
    "huge.txt": ("30\n1e18\n", "line 2: 1e+18 µs is not a device time"),
    "slow.txt": ("1e14\n", "line 1: 1e+14 µs is not a device time"),
    "nan.csv": ("us,io\n30,0\nnan,1\n", "line 3: nan µs is not a device time"),
    "neg.csv": ("us,io\n-4,0\n", "line 2: -4 µs is not a device time"),
    "zero.log": ("0, 0, 0, 4096, 0\n", "line 1: 0 ns = 0 µs is not a device time"),
    "blk.txt": (
        "259,0 1 1 0.000010000 697 D R 100 + 8 [fio]\n259,0 1 2 0.000010000 697 C R 100 + 8 [0]\n",
        "line 2: D (line 1) to C = 0 µs is not a device time",
    ),
    "binary.txt": ("\udcff\udcfe", "not a UTF-8 text file"),
}


@pytest.mark.parametrize("name", list(BAD_FILES))
def test_trace_files_of_no_device_times(tmp_path: Path, name: str) -> None:
    """Zeros and D = C divided by zero; 1e14 µs hung the page model; 1e18 overflowed the
    kernel model. Files are checked as they are read, before either model runs."""
    text, message = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    args = ("--trace", str(path), "--ios", "5", "--model", "page", "--method", "pas,lhp,cp,int")
    assert_one_line_error(run_dpas("emulate", *args, timeout=60), f"trace {path}", message)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("constant:-5", "trace constant:-5: US = -5 µs is not a device time"),  # was clamped
        ("ramp:-100:-50", "FROM = -100 µs is not a device time"),  # was clamped
        ("constant:0", "US = 0 µs is not a device time"),
        ("constant:1e18", "US = 1e+18 µs is not a device time"),
        ("noisy:30:nan", "SD nan: expected a number from 0"),
        ("noisy:3:5", "US - SD = -2 µs is not a device time"),
        ("gaussian:5:10", "I/O 3 = -8.03157"),
        ("bimodal:20:80:inf", "P inf: expected a number from 0 to 1"),
        ("step:50:10:-1", "AT -1: expected a whole number from 0"),
    ],
)
def test_patterns_refuse_what_files_refuse(spec: str, message: str) -> None:
    out = run_dpas("emulate", "--trace", spec, "--ios", "50", timeout=60)
    assert_one_line_error(out, message, "expected")


@pytest.mark.parametrize("model", ["kernel", "page"])
@pytest.mark.parametrize(
    "spec", ["constant:0.001", "constant:10000000", "bimodal:0.001:10000000:0.5", "zssd"]
)
def test_json_is_strict_at_the_limits(
    capsys: pytest.CaptureFixture[str], spec: str, model: str
) -> None:
    """NaN and Infinity are no JSON: the output must parse with both refused."""
    methods = "pas,lhp,cp,int" if model == "page" else "all"
    extra = ["--cs-overhead-us", "0", "--epoch-ms", "0.000001"]
    text = run(
        capsys,
        "--trace",
        spec,
        "--ios",
        "300",
        "--model",
        model,
        "--method",
        methods,
        "--json",
        *extra,
    )

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the JSON output")

    data = json.loads(text, parse_constant=refuse)
    assert len(data["methods"]) == (4 if model == "page" else 6)
