"""``dpas compare`` and the spread of repeats (dpas.reports.stats): the interval by hand,
the t table against t's density, and compare on results that ``dpas bench`` really made."""

from __future__ import annotations

import json
import math
from pathlib import Path
from statistics import fmean
from typing import Any

import numpy as np
import pytest
from conftest import run_dpas

from dpas.cli import main
from dpas.reports.stats import T975, Summary, Welch, t975

#: the simulator's sweep both sides run: PAS sleeps d_init first, INT never reads it
SWEEP = ["bench", "INT", "PAS", "3", "--jobs", "1,2", "--runtime", "0.2", "--json"]


def test_the_interval_of_one_to_five_by_hand() -> None:
    """1..5: mean 3, s = sqrt(2.5) = 1.581, t(0.975, 4) = 2.776, half-width
    2.776 x 1.581 / sqrt(5) = 1.963."""
    summary = Summary.of([1, 2, 3, 4, 5])
    assert summary.n == 5 and summary.mean == 3
    assert summary.sd == pytest.approx(1.5811, abs=1e-4)
    assert summary.half_width == pytest.approx(1.963, abs=1e-3)
    assert summary.shown(".2f") == "3.00 ±1.96"


def test_one_value_has_no_interval() -> None:
    one = Summary.of([7.0])
    assert (one.n, one.mean, one.half_width) == (1, 7.0, None) and one.shown(".1f") == "7.0"
    with pytest.raises(ValueError):
        Summary.of([])


@pytest.mark.parametrize("df", [1, 2, 4, 10, 30])
def test_the_t_table_holds_95_percent_of_ts_density(df: int) -> None:
    """t's density integrated from -q to q, q the table's value, is 0.95 (the table's four
    decimals allow 1e-4)."""
    q = T975[df - 1]
    x = np.linspace(-q, q, 400_001)
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(df * math.pi)
    mass = np.trapezoid(scale * (1 + x * x / df) ** (-(df + 1) / 2), x)
    assert mass == pytest.approx(0.95, abs=1e-4)


def test_beyond_the_table_the_normal_and_a_fractional_df_rounds_down() -> None:
    assert t975(31) == t975(1000) == 1.96 and t975(30) > 1.96
    assert t975(4.9) == t975(4) == 2.7764 and t975(0.3) == t975(1)


def test_welch_by_hand() -> None:
    """1..5 against 3..7: each side's variance of the mean 2.5/5 = 0.5, t = 2 / sqrt(1) = 2,
    df = 1 / (2 x 0.25 / 4) = 8, t(0.975, 8) = 2.306: not significant; against 4..8, t = 3:
    significant. No spread on either side: unequal means differ."""
    a = Summary.of([1, 2, 3, 4, 5])
    near = Welch.of(a, Summary.of([3, 4, 5, 6, 7]))
    assert near.t == pytest.approx(2.0) and near.df == pytest.approx(8.0) and not near.significant
    far = Welch.of(a, Summary.of([4, 5, 6, 7, 8]))
    assert far.t == pytest.approx(3.0) and far.significant
    assert Welch.of(Summary.of([2, 2, 2]), Summary.of([3, 3, 3])).significant
    assert not Welch.of(Summary.of([2, 2, 2]), Summary.of([2, 2, 2])).significant
    with pytest.raises(ValueError):
        Welch.of(Summary.of([1]), a)


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two real simulator sweeps, 3 repeats: A with pas_d_init 4 µs (bench.sh's auto is about
    4.5), B with 20 µs, so PAS oversleeps in B; INT's records are the same in both."""
    root = tmp_path_factory.mktemp("compare")
    for name, d_init in (("a", "4000"), ("b", "20000")):
        main([*SWEEP, "--d-init", d_init, "--out", str(root / name)])
    return root / "a", root / "b"


def records(side: Path) -> list[dict[str, Any]]:
    return json.loads((side / "results.json").read_text())["records"]  # type: ignore[no-any-return]


def values(side: Path, mode: str, jobs: int, field: str) -> list[float]:
    return [r[field] for r in records(side) if r["mode"] == mode and r["jobs"] == jobs]


def compared(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    capsys.readouterr()
    main(["compare", *args, "--json"])
    return json.loads(capsys.readouterr().out)  # type: ignore[no-any-return]


@pytest.mark.parametrize(("metric", "field"), [("iops", "iops"), ("lat", "lat_mean_us")])
def test_compare_says_what_the_data_say(
    capsys: pytest.CaptureFixture[str], sides: tuple[Path, Path], metric: str, field: str
) -> None:
    """Every cell's means are its records' means; a verdict is better or worse exactly when
    Welch's test finds a difference, in the direction the metric reads as better; INT (the
    same records both sides) is the same at a ratio of 1; the geometric mean is the cells'."""
    a, b = sides
    doc = compared(capsys, str(a), str(b / "results.json"), "--metric", metric)
    assert doc["schema"] == "dpas.compare/1" and doc["config_differs"] == ["d_init"]
    cells = {(c["mode"], c["jobs"]): c for c in doc["cells"]}
    assert set(cells) == {(m, j) for m in ("INT", "PAS") for j in (1, 2)}
    higher_is_better = metric == "iops"
    for (mode, jobs), cell in cells.items():
        va, vb = values(a, mode, jobs, field), values(b, mode, jobs, field)
        assert cell["a"]["mean"] == pytest.approx(fmean(va)) and cell["a"]["n"] == 3
        assert cell["b"]["mean"] == pytest.approx(fmean(vb)) and cell["b"]["n"] == 3
        welch = Welch.of(Summary.of(va), Summary.of(vb))
        assert cell["significant"] == welch.significant
        b_better = (fmean(vb) > fmean(va)) == higher_is_better
        expected = ("better" if b_better else "worse") if welch.significant else "same"
        assert cell["verdict"] == expected, (mode, jobs)
    for jobs in (1, 2):
        assert cells["INT", jobs]["ratio"] == 1 and cells["INT", jobs]["verdict"] == "same"
        assert cells["PAS", jobs]["verdict"] == "worse"  # 20 µs sleeps: every I/O overslept
    ratios = [c["ratio"] for c in doc["cells"]]
    assert doc["geometric_mean"] == pytest.approx(math.prod(ratios) ** (1 / len(ratios)))
    assert doc["counts"] == {"better": 0, "worse": 2, "same": 2, "cannot tell": 0}


def test_the_text_groups_cells_and_words_the_ratio(
    capsys: pytest.CaptureFixture[str], sides: tuple[Path, Path], tmp_path: Path
) -> None:
    a, b = sides
    capsys.readouterr()
    main(["compare", str(a), str(b), "--figure", str(tmp_path / "ratios.png")])
    out = capsys.readouterr().out
    assert "worse (2)" in out and "same (2)" in out and "better (" not in out
    slower = fmean(values(a, "PAS", 1, "iops")) / fmean(values(b, "PAS", 1, "iops"))
    assert f"{slower:.2f}x slower" in out and "1.00x (equal)" in out
    a_int = Summary.of(values(a, "INT", 1, "iops"))
    assert f"{a_int.mean:.0f} ±{a_int.half_width:.0f}" in out
    assert "geometric mean of 4 cells' ratios:" in out
    assert (tmp_path / "ratios.png").read_bytes()[:4] == b"\x89PNG"


def test_a_change_below_min_change_counts_as_the_same(
    capsys: pytest.CaptureFixture[str], sides: tuple[Path, Path]
) -> None:
    """A threshold between PAS's two changes: the smaller becomes the same, the larger stays
    worse."""
    a, b = sides
    changes = {
        jobs: abs(fmean(values(b, "PAS", jobs, "iops")) / fmean(values(a, "PAS", jobs, "iops")) - 1)
        * 100
        for jobs in (1, 2)
    }
    small, large = sorted(changes, key=changes.__getitem__)
    threshold = (changes[small] + changes[large]) / 2
    doc = compared(capsys, str(a), str(b), "--min-change", f"{threshold:.3f}")
    verdicts = {c["jobs"]: c["verdict"] for c in doc["cells"] if c["mode"] == "PAS"}
    assert verdicts == {small: "same", large: "worse"}


def test_fewer_than_three_repeats_cannot_tell(
    capsys: pytest.CaptureFixture[str], sides: tuple[Path, Path], tmp_path: Path
) -> None:
    """A's third repeat dropped: every cell says "cannot tell (n=2/3)", yet keeps its means
    and ratio."""
    a, b = sides
    document = json.loads((a / "results.json").read_text())
    document["records"] = [r for r in document["records"] if r["repeat"] < 3]
    (tmp_path / "two.json").write_text(json.dumps(document))
    doc = compared(capsys, str(tmp_path / "two.json"), str(b))
    assert {c["verdict"] for c in doc["cells"]} == {"cannot tell"}
    assert all(c["why"] == "n=2/3" and c["significant"] is None for c in doc["cells"])
    assert all(c["a"]["n"] == 2 and c["ratio"] is not None for c in doc["cells"])
    main(["compare", str(tmp_path / "two.json"), str(b)])
    assert "cannot tell (n=2/3)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["missing"], "missing: no such file or folder"),
        ("folder", ["folder"], "folder: no results.json in this folder"),
        ("text", ["text"], "text: not JSON"),
        ("other", ["other"], "other: not dpas results"),
        ("nocells", ["nocells"], "share no cell"),
        ("badrecord", ["badrecord"], "badrecord: record 0 has no number for iops"),
        (None, ["A", "--metric", "speed"], "Invalid value for '--metric'"),
        (None, ["A", "--min-change", "-3"], "expected a number from 0 to 1000"),
        (None, ["A", "--figure", "ratios.txt"], "--figure ratios.txt: expected a file name"),
    ],
)
def test_bad_inputs_are_one_line_and_exit_2(
    sides: tuple[Path, Path], tmp_path: Path, make: str | None, args: list[str], message: str
) -> None:
    a, _ = sides
    document = json.loads((a / "results.json").read_text())
    made = {
        "folder": None,
        "text": "not json {",
        "other": json.dumps({"schema": "dpas.validate/1", "records": []}),
        "nocells": json.dumps(
            {**document, "records": [{**r, "mode": "CP"} for r in document["records"]]}
        ),  # fmt: skip
        "badrecord": json.dumps({**document, "records": [{**document["records"][0], "iops": "x"}]}),
    }
    if make == "folder":
        (tmp_path / "folder").mkdir()
    elif make is not None:
        (tmp_path / make).write_text(made[make] or "")
    words = [str(a) if w == "A" else str(tmp_path / w) if w == args[0] else w for w in args]
    out = run_dpas("compare", str(a), *words)
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in out.stderr
