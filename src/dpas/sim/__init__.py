"""The system simulator: one host and one NVMe device, driven by the policy core.

``SCHEMA`` and ``RunResult`` live in ``dpas.results``; they are re-exported here for code
written against earlier versions.
"""

from dpas.results import SCHEMA, RunResult
from dpas.sim.profile import Profile, ProfileError, load
from dpas.sim.run import RunConfig, simulate

__all__ = ["SCHEMA", "Profile", "ProfileError", "RunConfig", "RunResult", "load", "simulate"]
