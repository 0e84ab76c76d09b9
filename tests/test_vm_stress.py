"""dpas.vm.stress: random DPAS knob writes while polled reads run. Here (fast) on a queue of
the test's own files; in the guest (slow) on Debian's kernel, which has io_poll_delay only, and
on the artifact's DPAS tree with --fix all where one is at hand (DPAS_ARTIFACT_TREE=its
kernel/ folder): CI has no copy of it."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
from conftest import NO_ARTIFACT_TREE

from dpas.vm.stress import VALUES, fio_argv, knobs_here, stress


def queue(root: Path, names: list[str]) -> Path:
    root.mkdir()
    for name in names:
        (root / name).write_text("0\n")
    return root


def test_the_writes_are_drawn_from_the_seed_and_streamed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ["pas_enabled", "io_poll_delay", "switch_param5"]  # in VALUES order
    runs = []
    for n in range(3):
        q = queue(tmp_path / f"q{n}", names)
        seed = 7 if n < 2 else 8
        done = stress(0.3, seed, "5.18.0", q, [sys.executable, "-c", "import time; time.sleep(1)"])
        lines = re.findall(r"^@@KNOB (\w+) (-?\d+)$", capsys.readouterr().out, re.M)
        assert done["knobs"] == names and done["writes"] == len(lines) > 3
        assert all(name in names and int(v) in VALUES[name] for name, v in lines)
        last = {name: v for name, v in lines}
        assert all((q / k).read_text() == f"{v}\n" for k, v in last.items())
        runs.append([line for line in lines])
    shortest = min(len(r) for r in runs[:2])
    assert runs[0][:shortest] == runs[1][:shortest]  # the same seed, the same writes
    assert runs[0][:shortest] != runs[2][:shortest]


def test_only_the_knobs_the_kernel_has_are_written(tmp_path: Path) -> None:
    assert knobs_here(queue(tmp_path / "q", ["io_poll_delay", "nomerges"])) == ["io_poll_delay"]
    assert "--ioengine=pvsync2" in fio_argv(5, "5.18.0-rc6-dpas-fast26")
    assert "--ioengine=io_uring" in fio_argv(5, "7.2.13")


def stressed(spec: str, fixes: tuple[str, ...] = ()) -> dict[str, object]:
    from dpas.vm.guest import GuestRun
    from dpas.vm.runner import VmConfig, vm_stress

    return vm_stress(VmConfig(GuestRun(), spec, fixes=fixes), 60, 1)


@pytest.mark.slow
def test_knob_writes_during_polled_reads_on_debians_kernel() -> None:
    got = stressed("debian:bookworm")
    done = got["stress"]
    assert done is not None, got
    assert got["trouble"] == "", got
    assert done["knobs"] == ["io_poll_delay"] and done["writes"] > 100, done  # type: ignore[index]
    assert done["fio_exit"] == 0 and done["ios"] > 0, done  # type: ignore[index]


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("DPAS_ARTIFACT_TREE"), reason=NO_ARTIFACT_TREE
)  # by design: CI has no artifact tree and lets this skip through (conftest.BY_DESIGN)
def test_knob_writes_during_polled_reads_on_the_fixed_artifact_kernel() -> None:
    got = stressed(
        f"build:{os.environ['DPAS_ARTIFACT_TREE']}", ("alloc", "stats", "buckets", "yield")
    )
    done = got["stress"]
    assert got["trouble"] == "", got  # an oops here is a finding: docs/vm.md, and a --fix
    assert done is not None and done["writes"] > 100 and done["ios"] > 0, got  # type: ignore[index]
    assert "switch_param7" in done["knobs"], done  # type: ignore[index]
