"""The fit the docs claim holds: each drive profile's ``dpas validate`` grid, rerun as the docs
quote it (1 s runs, seed 1), is at least as close to its published table as docs/data/
validate.json says, and README.md, docs/profiles.md and docs/validate.md print their claims
("within 5.4%", "68 of their 72 cells", the summary lines) from that file (docs/make.py,
tests/test_docs_numbers.py). A model change that loosens a drive's fit fails here; one that
tightens it asks for `python docs/make.py --rerun validate`.

Each paper drive's grid (6 modes x 1-20 jobs, one CPU a job) takes minutes on two cores (see
docs/validate.md): marked slow, so CI runs them. qemu-lab's grid, seconds, is recomputed and
held equal to the committed one by tests/test_docs_numbers.py, which is stronger."""

from __future__ import annotations

from typing import Any

import pytest
from test_docs_numbers import make

#: the docs print errors to 0.1: a rerun meets a claim when it prints no worse
PRINTED = 0.05
#: the paper's drives (the lab's profile: tests/test_docs_numbers.py)
PAPER = tuple(make.DRIVE_NAMES)


def claims(summary: dict[str, Any]) -> list[tuple[str, float | None]]:
    """What a summary claims, as (what, bound), lower is better: each error's mean and worst,
    and the cells not within the bar (5% IOPS, 5 CPU points)."""
    found: list[tuple[str, float | None]] = []
    for kind in make.ERROR_KINDS:
        found += [(f"{kind} {k}", summary[kind][k]) for k in ("mean_abs", "worst_abs")]
    found += [(f"cells not {k}", summary["cells"] - summary[k]) for k in ("within", "within_iops")]
    found += [("cells", -summary["cells"])]
    return found


def unmet(fresh: dict[str, Any], claimed: dict[str, Any]) -> list[str]:
    """The claims the fresh summary does not meet (as the docs print them)."""
    out = []
    for (what, now), (_, bound) in zip(claims(fresh), claims(claimed), strict=True):
        if bound is None:
            continue
        if now is None or now > bound + (PRINTED if isinstance(bound, float) else 0):
            out.append(f"{what}: {now} where the docs claim {bound}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize("profile", PAPER)
def test_the_fit_the_docs_claim_holds(profile: str) -> None:
    claimed = make.load_data("validate")["profiles"][profile]["summary"]
    fresh = make.validate_data((profile,), figures=False)["profiles"][profile]["summary"]
    assert unmet(fresh, claimed) == []


def test_a_looser_fit_is_caught() -> None:
    claimed = make.load_data("validate")["profiles"]["optane-p5800x"]["summary"]
    worse = {**claimed, "within": claimed["within"] - 1}
    worse["iops_predicted"] = {
        **claimed["iops_predicted"],
        "worst_abs": claimed["iops_predicted"]["worst_abs"] + 0.1,
    }
    assert len(unmet(worse, claimed)) == 2
    assert unmet(claimed, claimed) == []
