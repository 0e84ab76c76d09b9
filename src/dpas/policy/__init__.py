"""The decision logic of every completion method, faithful to the DPAS kernel.

No I/O, no clocks, no randomness: callers pass time in through the event API of
:mod:`dpas.policy.base`, and every other layer of dpas reuses these rules.
"""

from dpas.policy.base import Io, Policy
from dpas.policy.classic import CpPolicy, IntPolicy
from dpas.policy.dpas import DpasPolicy
from dpas.policy.ehp import EhpParams, EhpPolicy
from dpas.policy.lhp import LhpPolicy
from dpas.policy.methods import Method, PolicyConfig, make_policy
from dpas.policy.pas import DIV, Adaptive, Case, PasParams, PasPolicy, PasState, PasUpdate
from dpas.policy.request import NO_BUCKET, Bucketing, Op, Request, bucket_of
from dpas.policy.rules import ARTIFACT, LAB, RULE_SETS, Rules
from dpas.policy.switch import EDGES, Mode, Order, SwitchParams, SwitchState, Transition

__all__ = [
    "ARTIFACT",
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
    "IntPolicy",
    "Io",
    "LhpPolicy",
    "Method",
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
