"""The docs' numbers are docs/make.py's: every generated block of README.md and docs/*.md is
what the committed results (docs/data/) write, and those results are what the code gives today
(the cheapest of them, qemu-lab's validate grid, recomputed here; the paper drives' grids by
tests/test_fit.py, slow)."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

MAKE = Path(__file__).resolve().parents[1] / "docs" / "make.py"


def load_make() -> ModuleType:
    """docs/make.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("docs_make", MAKE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


make = load_make()


def close(fresh: Any, committed: Any, where: str = "") -> list[str]:
    """Where two JSON trees differ (floats to 1e-9 relative: the same runs, maybe another
    build of the compiled modules)."""
    if isinstance(committed, dict) and isinstance(fresh, dict):
        if fresh.keys() != committed.keys():
            return [f"{where}: keys {sorted(fresh)} != {sorted(committed)}"]
        return [d for k in committed for d in close(fresh[k], committed[k], f"{where}.{k}")]
    if isinstance(committed, list) and isinstance(fresh, list) and len(fresh) == len(committed):
        return [
            d
            for i, (f, c) in enumerate(zip(fresh, committed, strict=True))
            for d in close(f, c, f"{where}[{i}]")
        ]
    if isinstance(committed, float) and isinstance(fresh, float | int):
        return (
            []
            if math.isclose(fresh, committed, rel_tol=1e-9)
            else [f"{where}: {fresh} != {committed}"]
        )
    return [] if fresh == committed else [f"{where}: {fresh!r} != {committed!r}"]


def test_every_block_is_written_from_the_committed_results(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = make.main(["--check"])
    assert code == 0, f"run `python docs/make.py` (or --rerun): {capsys.readouterr().out}"


def test_every_block_on_the_pages_has_a_writer_and_every_writer_a_block() -> None:
    found = [m["name"] for page in make.PAGES for m in make.blocks(page.read_text())]
    assert sorted(set(found)) == sorted(make.BLOCKS)
    assert len(found) == len(set(found)), "a block name used twice"


def test_the_check_names_a_block_that_differs() -> None:
    data = {name: make.load_data(name) for name in (*make.MAKERS, *make.FROZEN)}
    page = make.ROOT / "docs" / "validate.md"
    text = page.read_text()
    good, changed = make.rendered(text, data, page)
    assert good == text and changed == []
    stale = text.replace("qemu-lab: 20 cells compared", "qemu-lab: 21 cells compared")
    fixed, changed = make.rendered(stale, data, page)
    assert changed == ["docs/validate.md: qemu-lab-summary"] and fixed == text


def test_an_unknown_block_is_refused() -> None:
    with pytest.raises(SystemExit, match="unknown block 'nope'"):
        make.rendered("<!-- make.py: nope -->\nx\n<!-- end -->\n", {}, MAKE)


def test_the_cheapest_committed_result_is_what_the_code_gives_today() -> None:
    name = "qemu-lab"  # 20 cells, every job on one CPU: seconds
    fresh = make.validate_data((name,), figures=False)["profiles"][name]
    committed = make.load_data("validate")["profiles"][name]
    assert close(fresh, committed) == []


def test_a_measured_block_names_its_machine_date_and_command() -> None:
    data = {name: make.load_data(name) for name in (*make.MAKERS, *make.FROZEN)}
    # benchmarks/measured.py's files (guest-phases is a results.json naming its machine in words)
    measured = [n for n in make.FROZEN if isinstance(data[n].get("machine"), dict)]
    assert {"sim-throughput", "engine-overhead", "sweep-sizing", "vm-times"} <= set(measured)
    for name in measured:
        found = data[name]
        assert found["command"] and found["machine"]["cores"] >= 1
        body = make.BLOCKS[name](data)
        assert found["date"] in body and f"{found['machine']['cores']} cores" in body, name
        assert found["command"] in " ".join(body.split()), name
