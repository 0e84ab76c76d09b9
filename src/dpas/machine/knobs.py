"""A block queue's knobs that dpas reads and sets (docs/reference.md section 1)."""

from __future__ import annotations

#: the knobs only the DPAS kernel has (docs/reference.md section 1)
DPAS_KNOBS = (
    "pas_enabled",
    "pas_adaptive_enabled",
    "pas_d_init",
    "switch_enabled",
    "ehp_enabled",
    *(f"switch_param{i}" for i in range(1, 8)),
)
