"""The decision logic of every completion method, faithful to the DPAS kernel.

No I/O, no clocks, no randomness: callers pass time in through the event API of
:mod:`dpas.policy.base`, and every other layer of dpas reuses these rules.
"""

import copyreg as _copyreg
import dataclasses as _dataclasses
import sys as _sys

from dpas.policy.base import Io, Policy
from dpas.policy.classic import CpPolicy, IntPolicy
from dpas.policy.dpas import DpasPolicy
from dpas.policy.ehp import EhpParams, EhpPolicy
from dpas.policy.lhp import LhpPolicy
from dpas.policy.methods import (
    BENCH_ORDER,
    ENGINE_ORDER,
    KERNEL_WAITS,
    SLEEPERS,
    Method,
    PolicyConfig,
    make_policy,
)
from dpas.policy.pas import DIV, Adaptive, Case, PasParams, PasPolicy, PasState, PasUpdate
from dpas.policy.request import NO_BUCKET, Bucketing, Op, Request, bucket_of
from dpas.policy.rules import ARTIFACT, LAB, RULE_SETS, Rules
from dpas.policy.switch import EDGES, Mode, Order, SwitchParams, SwitchState, Transition

__all__ = [
    "ARTIFACT",
    "BENCH_ORDER",
    "DIV",
    "LAB",
    "RULE_SETS",
    "Rules",
    "EDGES",
    "NO_BUCKET",
    "Adaptive",
    "Bucketing",
    "Case",
    "CpPolicy",
    "DpasPolicy",
    "EhpParams",
    "EhpPolicy",
    "ENGINE_ORDER",
    "IntPolicy",
    "Io",
    "KERNEL_WAITS",
    "LhpPolicy",
    "Method",
    "SLEEPERS",
    "Mode",
    "Op",
    "Order",
    "PasParams",
    "PasPolicy",
    "PasState",
    "PasUpdate",
    "Policy",
    "PolicyConfig",
    "Request",
    "SwitchParams",
    "SwitchState",
    "Transition",
    "bucket_of",
    "make_policy",
]


def _pickle_by_fields(cls: type) -> None:
    """mypyc compiles these modules (dpas.compiled), and a compiled frozen dataclass cannot be
    unpickled field by field (its __setattr__ refuses): rebuild it from its fields instead, so
    run configs cross to worker processes either way."""

    def reduce(obj: object) -> tuple[type, tuple[object, ...]]:
        return cls, tuple(getattr(obj, f.name) for f in _dataclasses.fields(obj))  # type: ignore[arg-type]

    _copyreg.pickle(cls, reduce)


for _module in list(_sys.modules.values()):
    if getattr(_module, "__name__", "").startswith("dpas.policy."):
        for _cls in list(vars(_module).values()):
            _params = getattr(_cls, "__dataclass_params__", None)
            if isinstance(_cls, type) and _params is not None and _params.frozen:
                if _cls.__module__ == _module.__name__:
                    _pickle_by_fields(_cls)
