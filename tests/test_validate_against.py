"""``dpas validate --against FILE``: a user's table, run on the simulator and compared."""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import run_dpas
from test_validate import PAPER_PUBLISHED

from dpas.cli import main

#: a small [published] grid on optane_p5800x, fitted to CP x1 and INT x2 (qemu-lab's numbers:
#: the runs are quick, and the grid's own cells are what the fitted tests need)
SMALL_PUBLISHED = PAPER_PUBLISHED.replace('fitted = ["CP x1"]', 'fitted = ["CP x1", "INT x2"]')
assert "INT x2" in SMALL_PUBLISHED
RUNTIME = "0.05"


def small_profile(tmp_path: Path, name: str = "small-optane") -> Path:
    """qemu-lab's numbers under ``name``, with SMALL_PUBLISHED for its [published] section."""
    text = (resources.files("dpas.sim") / "profiles" / "qemu-lab.toml").read_text()
    text = text[: text.index("[published]")] + SMALL_PUBLISHED
    text = text.replace('name = "qemu-lab"', f'name = "{name}"')
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return path


def table_file(path: Path, table: Any) -> Path:
    path.write_text(json.dumps(table) if not isinstance(table, str) else table)
    return path


def saved(out: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((out / "validate.json").read_text())
    return data


def model_kiops(entry: dict[str, Any], mode: str, jobs: int) -> float:
    """The mean IOPS of the entry's records of one cell, in thousands."""
    runs = [r["iops"] for r in entry["records"] if (r["mode"], r["jobs"]) == (mode, jobs)]
    assert runs, (mode, jobs)
    return sum(runs) / len(runs) / 1000


def model_cpu(entry: dict[str, Any], mode: str, jobs: int) -> float:
    runs = [r["cpu_pct"] for r in entry["records"] if (r["mode"], r["jobs"]) == (mode, jobs)]
    return sum(runs) / len(runs)


# -- (a) a table at 8 KiB on the shipped Optane profile ------------------------------------------

BS8K = {
    "what": "made up for the test: 8 KiB random reads",
    "bs": 8192,
    "modes": ["INT", "CP", "DPAS"],
    "devices": {
        "optane_p5800x": {
            "role": "prediction: 8 KiB",
            "kiops": {"1": {"CP": 150.0, "INT": 110.0}, "4": {"DPAS": 500.0}},
            "cpu_pct": {"1": {"CP": 99.0}},
        }
    },
}
BS8K_CELLS = {("CP", 1): 150.0, ("INT", 1): 110.0, ("DPAS", 4): 500.0}


def test_a_table_at_8k_is_run_at_8k_and_compared_cell_by_cell(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = table_file(tmp_path / "bs8k.json", BS8K)
    out = tmp_path / "out"
    main(["validate", "--profile", "optane-p5800x", "--against", str(path),
          "--runtime", RUNTIME, "--out", str(out)])  # fmt: skip
    screen = capsys.readouterr().out
    data = saved(out)
    assert data["config"]["against"] == [str(path)]
    shipped, against = data["profiles"]
    assert "against" not in shipped and shipped["sweep"]["bs"] == 4096
    assert against["name"] == "optane-p5800x"
    assert against["against"] == {"file": str(path), "bs": 8192}
    assert against["role"] == "prediction: 8 KiB"
    # the run: the file's bs, and the profile's published placement and switch params
    assert against["sweep"]["bs"] == 8192 and against["sweep"]["cpus"] == "split"
    assert against["sweep"]["switch"] == shipped["sweep"]["switch"]
    assert against["sweep"]["modes"] == ["INT", "CP", "DPAS"]  # the file's order
    # only the cells the file gives ran, each once
    assert sorted((r["mode"], r["jobs"]) for r in against["records"]) == sorted(BS8K_CELLS)
    assert all(r["runtime_s"] == float(RUNTIME) for r in against["records"])
    cells = {(c["mode"], c["jobs"]): c for c in against["cells"]}
    assert set(cells) == set(BS8K_CELLS)
    for (mode, jobs), published in BS8K_CELLS.items():
        cell = cells[mode, jobs]
        model = model_kiops(against, mode, jobs)
        assert cell["published_kiops"] == published
        assert cell["model_kiops"] == pytest.approx(model)
        assert cell["iops_error_pct"] == pytest.approx((model - published) / published * 100)
        assert not cell["fitted"]  # 8 KiB: nothing was fitted at that size
    cp1 = cells["CP", 1]
    assert cp1["published_cpu_pct"] == 99.0
    assert cp1["cpu_error_pts"] == pytest.approx(model_cpu(against, "CP", 1) - 99.0)
    assert cells["INT", 1]["published_cpu_pct"] is None
    # 8 KiB ran as 8 KiB: a bigger transfer is slower than the shipped 4 KiB run of the cell
    shipped_cp1 = next(c for c in shipped["cells"] if (c["mode"], c["jobs"]) == ("CP", 1))
    assert cp1["model_kiops"] < shipped_cp1["model_kiops"]
    summary = against["summary"]
    assert summary["cells"] == 3 and summary["iops_fitted"]["cells"] == 0
    assert summary["iops_predicted"]["cells"] == 3 and summary["table"] == str(path)
    # the screen: titled with the file and bs, after the shipped table
    title = f"optane-p5800x: model/published ({path}, optane_p5800x, bs 8k, prediction)"
    assert title in screen
    assert screen.index("(paper_4k_randread/optane_p5800x") < screen.index(title)
    assert f"optane-p5800x against {path}: bs 8k, jobs on one CPU each" in screen
    assert screen.count("optane-p5800x: 3 cells compared") == 1
    # the CSV: the against columns, empty on the shipped rows
    rows = list(csv.DictReader((out / "validate.csv").open()))
    assert [r["against_file"] for r in rows] == [""] * 36 + [str(path)] * 3
    assert {r["against_bs"] for r in rows[36:]} == {"8192"}
    for name in ("optane-p5800x.png", "optane-p5800x-against-bs8k.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


# -- (b) fitted only at the fitted cells, and only at 4 KiB ---------------------------------------


def own_cells(bs: int) -> dict[str, Any]:
    """The small profile's fitted cells (CP x1, INT x2) and one it was not fitted to."""
    kiops = {"1": {"CP": 160.0, "INT": 120.0}, "2": {"INT": 240.0}}
    return {"bs": bs, "devices": {"optane_p5800x": {"kiops": kiops}}}


@pytest.mark.parametrize(("bs", "fitted"), [(4096, {("CP", 1), ("INT", 2)}), (8192, set())])
def test_fitted_cells_are_fitted_only_at_4k(
    bs: int, fitted: set[tuple[str, int]], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    profile = small_profile(tmp_path)
    path = table_file(tmp_path / f"own-{bs}.json", own_cells(bs))
    out = tmp_path / "out"
    main(["validate", "--profile", str(profile), "--against", str(path),
          "--runtime", RUNTIME, "--out", str(out)])  # fmt: skip
    screen = capsys.readouterr().out
    shipped, against = saved(out)["profiles"]
    assert against["against"]["bs"] == bs and against["sweep"]["bs"] == bs
    assert against["role"] == "prediction"  # the file names none
    cells = {(c["mode"], c["jobs"]): c for c in against["cells"]}
    assert set(cells) == {("CP", 1), ("INT", 1), ("INT", 2)}
    assert {k for k, c in cells.items() if c["fitted"]} == fitted
    assert against["summary"]["iops_fitted"]["cells"] == len(fitted)
    assert against["summary"]["iops_predicted"]["cells"] == 3 - len(fitted)
    # the shipped comparison keeps its own fitted cells whatever the file says
    assert {(c["mode"], c["jobs"]) for c in shipped["cells"] if c["fitted"]} == {
        ("CP", 1),
        ("INT", 2),
    }
    int1 = model_kiops(against, "INT", 1)
    assert cells["INT", 1]["iops_error_pct"] == pytest.approx((int1 - 120.0) / 120.0 * 100)
    marked = f"{cells['CP', 1]['model_kiops']:.1f}k/160.0k"
    line = next(s for s in screen.splitlines() if marked in s)
    assert ("%*" in line) is (("CP", 1) in fitted)


# -- (c) bad input: one line, exit 2, the file named ----------------------------------------------


def refused(capsys: pytest.CaptureFixture[str], args: list[str], *names: str) -> str:
    """``dpas validate ARGS`` exits 2 with one line on stderr naming ``names``, nothing run."""
    with pytest.raises(SystemExit) as exit_:
        main(["validate", *args])
    out = capsys.readouterr()
    assert exit_.value.code == 2, out.err
    assert out.err.startswith("dpas: error: "), out.err
    assert len(out.err.strip().splitlines()) == 1, out.err
    assert out.out == ""
    for name in names:
        assert name in out.err, (name, out.err)
    return out.err


def kiops_table(value: Any, **more: Any) -> dict[str, Any]:
    return {**more, "devices": {"optane_p5800x": {"kiops": {"1": {"CP": value}}}}}


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("{not json", ["not JSON"]),
        ("", ["not JSON"]),
        ("[1, 2]", ["not a JSON object"]),
        ({"optane_p5800x": {}}, ['no "devices"']),
        ({"multi_job_cpu0_pinned_iops": {"1": {"INT": 1}}}, ['no "devices"']),  # the lab's
        ({"devices": []}, ['"devices"']),
        ({"devices": {"optane_p5800x": {"kiops": [1]}}}, ["devices.optane_p5800x.kiops"]),
        ({"devices": {"optane_p5800x": {"cpu_pct": {}}}}, ['no "kiops"']),
        ({"devices": {"optane_p5800x": {"kiops": {}}}}, ["no cells"]),
        ({"devices": {"optane_p5800x": {"kiops": {"1": 5}}}}, ["kiops.1"]),
        ('{"devices": {"optane_p5800x": {"kiops": {"1": {"CP": NaN}}}}}', ["CP = NaN", "above 0"]),
        (kiops_table(float("inf")), ["CP = Infinity"]),
        (kiops_table(-3.0), ["devices.optane_p5800x.kiops.1.CP = -3.0", "above 0"]),
        (kiops_table(0), ["CP = 0"]),
        (kiops_table("150"), ['CP = "150"']),
        (kiops_table(True), ["CP = true"]),
        (kiops_table(150.0, bs=1000), ["bs = 1000", "multiple of 512", "67108864"]),
        (kiops_table(150.0, bs=0), ["bs = 0"]),
        (kiops_table(150.0, bs=8192.0), ["bs = 8192.0"]),
        (kiops_table(150.0, bs=128 << 20), ["bs = 134217728"]),
        (kiops_table(150.0, BS=8192), ["BS", "bs"]),
        (kiops_table(150.0, modes=["CP", "FAST"]), ["'FAST'", "DPAS"]),
        ({"devices": {"optane_p5800x": {"kiops": {"1": {"FAST": 1}}}}}, ["kiops.1", "'FAST'"]),
        ({"devices": {"optane_p5800x": {"kiops": {"1": {"cp": 1}}}}}, ["'cp'", "INT, CP"]),
        ({"devices": {"optane_p5800x": {"kiops": {"0": {"CP": 1}}}}}, ['kiops."0"', "4096"]),
        ({"devices": {"optane_p5800x": {"kiops": {"4097": {"CP": 1}}}}}, ['"4097"']),
        ({"devices": {"optane_p5800x": {"kiops": {"1.5": {"CP": 1}}}}}, ['"1.5"']),
        ({"devices": {"optane_p5800x": {"kiops": {"01": {"CP": 1}}}}}, ['"01"']),
        (
            {
                "devices": {
                    "optane_p5800x": {"kiops": {"1": {"CP": 1}}, "cpu_pct": {"1": {"CP": 101}}}
                }
            },
            ["cpu_pct.1.CP = 101", "0 to 100"],
        ),  # fmt: skip
        (
            {
                "devices": {
                    "optane_p5800x": {"kiops": {"1": {"CP": 1}}, "cpu_pct": {"1": {"CP": -1}}}
                }
            },
            ["cpu_pct.1.CP = -1"],
        ),  # fmt: skip
        (
            {"devices": {"optane_p5800x": {"kiops": {"1": {"CP": 1}}, "cpu": {}}}},
            ["cpu", "cpu_pct"],
        ),
        ({"devices": {"optane_p5800x": {"kiops": {"1": {"CP": 1}}, "role": 3}}}, ["role"]),
        ('{"devices": {"optane_p5800x": {"kiops": {"1": {"CP": 1, "CP": 2}}}}}', ["'CP'", "twice"]),
        ("[" * 100_000, ["not JSON"]),
    ],
)
def test_a_bad_table_is_one_line(
    content: Any, names: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = table_file(tmp_path / "bad.json", content)
    out = tmp_path / "out"
    refused(capsys, ["--against", str(path), "--out", str(out)], f"--against {path}", *names)
    assert not out.exists()


def test_a_drive_no_profile_names_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    table = kiops_table(150.0)
    table["devices"]["intel_p4800x"] = {"kiops": {"1": {"CP": 500}}}
    path = table_file(tmp_path / "drives.json", table)
    out = tmp_path / "out"
    err = refused(capsys, ["--against", str(path), "--out", str(out)], str(path),
                  "'intel_p4800x'", "optane_p5800x, samsung_983zet, skhynix_p41")  # fmt: skip
    assert "no profile chosen runs it" in err
    # a drive of the shipped profiles, but not of the one chosen: the chosen one's name only
    path = table_file(
        tmp_path / "skhynix.json", {"devices": {"skhynix_p41": {"kiops": {"1": {"CP": 1}}}}}
    )
    err = refused(capsys, ["--profile", "optane-p5800x", "--against", str(path), "--out", str(out)],
                  str(path), "'skhynix_p41'", "(optane_p5800x;")  # fmt: skip
    assert not out.exists()


def test_hyb_cannot_be_simulated(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = table_file(
        tmp_path / "hyb.json", {"devices": {"optane_p5800x": {"kiops": {"1": {"HYB": 150}}}}}
    )
    out = tmp_path / "out"
    refused(capsys, ["--profile", "optane-p5800x", "--against", str(path), "--out", str(out)],
            str(path), "HYB", "hybrid polling")  # fmt: skip
    assert not out.exists()


def test_two_tables_of_one_file_name_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = table_file(tmp_path / "a" / "t.json", kiops_table(150.0))
    second = table_file(tmp_path / "b" / "t.json", kiops_table(150.0))
    out = tmp_path / "out"
    refused(capsys, ["--profile", "optane-p5800x", "--against", str(first), "--against",
                     str(second), "--out", str(out)], str(first), str(second),
            "optane-p5800x-against-t.png")  # fmt: skip
    assert not out.exists()


def test_a_missing_file_from_the_command_line(tmp_path: Path) -> None:
    """As a user sees it: exit 2, one line naming the file, no traceback."""
    missing = tmp_path / "no-such-table.json"
    out = run_dpas("validate", "--against", str(missing), "--out", str(tmp_path / "out"))
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.startswith("dpas: error: ") and len(out.stderr.strip().splitlines()) == 1
    assert f"--against {missing}: cannot be read" in out.stderr and out.stdout == ""
    assert not (tmp_path / "out").exists()
    folder = run_dpas("validate", "--against", str(tmp_path), "--out", str(tmp_path / "out"))
    assert folder.returncode == 2 and f"--against {tmp_path}" in folder.stderr
    assert len(folder.stderr.strip().splitlines()) == 1 and "Traceback" not in folder.stderr


def test_a_figure_that_exists_as_a_folder_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = table_file(tmp_path / "bs8k.json", kiops_table(150.0, bs=8192))
    out = tmp_path / "out"
    (out / "optane-p5800x-against-bs8k.png").mkdir(parents=True)
    refused(capsys, ["--profile", "optane-p5800x", "--against", str(path), "--out", str(out)],
            "optane-p5800x-against-bs8k.png", "not a regular file")  # fmt: skip
    assert not (out / "validate.json").exists()


# -- (d) without --against, nothing changes --------------------------------------------------------


def test_without_against_the_output_is_as_before(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    profile = small_profile(tmp_path)
    plain, with_table = tmp_path / "plain", tmp_path / "with"
    main(["validate", "--profile", str(profile), "--runtime", RUNTIME, "--out", str(plain)])
    plain_screen = capsys.readouterr().out
    data = saved(plain)
    assert "against" not in data["config"]
    assert all("against" not in entry for entry in data["profiles"])
    assert "against" not in (plain / "validate.csv").read_text().splitlines()[0]
    assert sorted(p.name for p in plain.iterdir()) == [
        "small-optane.png",
        "validate.csv",
        "validate.json",
    ]
    assert " against " not in plain_screen and ", bs " not in plain_screen
    # the same run with a table: the profile's own comparison is the same, byte for byte
    path = table_file(tmp_path / "own.json", own_cells(4096))
    main(["validate", "--profile", str(profile), "--against", str(path),
          "--runtime", RUNTIME, "--out", str(with_table)])  # fmt: skip
    with_screen = capsys.readouterr().out
    shipped, against = saved(with_table)["profiles"]
    assert json.dumps(shipped) == json.dumps(data["profiles"][0])
    assert "against" in against
    ours = plain_screen[: plain_screen.index("wrote ")]
    assert with_screen.startswith(ours)
    plain_rows = (plain / "validate.csv").read_text().splitlines()
    with_rows = (with_table / "validate.csv").read_text().splitlines()
    assert [r.rsplit(",", 2)[0] for r in with_rows[: len(plain_rows)]] == plain_rows
