"""The records a fixed-seed `dpas bench` writes, byte for byte as before the record, the real
run and the simulator's wait paths were folded into one home each (tests/data/records)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_dpas

RECORDS = Path(__file__).parent / "data" / "records"
COMMANDS = {
    "lab": ("ALL", "--jobs", "1,2,4", "--runtime", "0.3", "--seed", "7"),
    "artifact-w": (
        "ALL", "W", "--jobs", "1,2", "--runtime", "0.2", "--seed", "5", "--rules", "artifact",
        "--order", "guide",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_a_fixed_seed_bench_writes_the_same_records(tmp_path: Path, name: str) -> None:
    out = run_dpas("bench", *COMMANDS[name], "--out", str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr
    kept = RECORDS / name
    assert (tmp_path / "results.csv").read_bytes() == (kept / "results.csv").read_bytes()
    written = (tmp_path / "results.json").read_text()
    simulator = json.loads(written)["simulator"]  # compiled or python: the same records
    expected = (kept / "results.json").read_text()
    expected = expected.replace('"simulator": "compiled"', f'"simulator": "{simulator}"')
    assert written == expected
