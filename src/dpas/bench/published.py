"""A profile's [published] section as a Sweep: the grid a drive's table was published on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from dpas.bench.backend import Sweep
from dpas.policy import Method, SwitchParams
from dpas.sim.profile import Published


def published_sweep(
    published: Published,
    sweep: Sweep,
    *,
    modes: tuple[Method, ...] | None = None,
    jobs: tuple[int, ...] | None = None,
    cpus: str | None = None,
    switch: Mapping[str, int] | None = None,
) -> Sweep:
    """``sweep`` run as the drive was published: its modes, job counts, CPU placement, switch
    params and pas_adaptive_enabled, the rest (runtime, repeats, d_init...) ``sweep``'s.
    ``modes``, ``jobs``, ``cpus`` and the params in ``switch`` (param1..7 by name) are what the
    caller was told instead: they win over the published values."""
    given = switch or {}
    params = {
        name: given.get(name, getattr(published.switch, name))
        for name in SwitchParams.__dataclass_fields__
    }
    return replace(
        sweep,
        modes=published.modes if modes is None else modes,
        jobs=published.jobs if jobs is None else jobs,
        cpus=published.cpus if cpus is None else cpus,
        switch=SwitchParams(**params),
        adaptive=published.adaptive,
    )
