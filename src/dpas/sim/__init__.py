"""The system simulator: one host and one NVMe device, driven by the policy core."""

from dpas.sim.profile import Profile, ProfileError, load
from dpas.sim.run import SCHEMA, RunConfig, RunResult, simulate

__all__ = ["SCHEMA", "Profile", "ProfileError", "RunConfig", "RunResult", "load", "simulate"]
