"""``--kernel dpas:VERSION``: the DPAS patch series kept in this repository (``kernel/``).

``kernel/series`` names the patches in the order they apply (quilt's format: one file name a
line, ``#`` comments); ``kernel/config`` the options they need beside the guest's own
(``CONFIG_BLK_DPAS=y`` and tracing, for the ``dpas_io`` trace event). dpas builds
``dpas:VERSION`` as ``build:VERSION`` with these patches and options (dpas.vm.build), so the
same cache, incremental rebuilds and refusals apply. The series is found beside the package
in a checkout (``pip install -e``), or where ``DPAS_KERNEL_SERIES`` points.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from dpas.vm.kernel import VmError

#: the version the series is written against (kernel/README)
TARGET = "7.2"


@dataclass(frozen=True, slots=True)
class Series:
    folder: Path
    patches: tuple[Path, ...]
    #: CONFIG_ names (without the prefix) that must be =y
    options: tuple[str, ...]


def series_folder() -> Path:
    """kernel/ of the checkout this package runs from, or $DPAS_KERNEL_SERIES."""
    given = os.environ.get("DPAS_KERNEL_SERIES")
    if given:
        return Path(given).expanduser()
    return Path(__file__).resolve().parents[3] / "kernel"


def read_series(folder: Path | None = None) -> Series:
    """The series and its options, checked: a missing file or patch is a one-line VmError."""
    folder = folder or series_folder()
    listing, config = folder / "series", folder / "config"
    if not listing.is_file() or not config.is_file():
        raise VmError(
            f"dpas:VERSION needs the DPAS patch series (kernel/series and kernel/config of a "
            f"dpas checkout, installed with pip install -e, or DPAS_KERNEL_SERIES=DIR): not "
            f"found in {folder}"
        )
    names = [line.strip() for line in listing.read_text().splitlines()]
    patches = tuple(folder / name for name in names if name and not name.startswith("#"))
    for patch in patches:
        if not patch.is_file():
            raise VmError(f"{listing} names {patch.name}, which is not in {folder}")
    if not patches:
        raise VmError(f"{listing} names no patch")
    options = tuple(re.findall(r"^CONFIG_(\w+)=y\s*$", config.read_text(), re.M))
    return Series(folder, patches, options)
