"""Which DPAS kernel the rules follow: the lab's (sections 2-4 of the reference, the default)
or the artifact's 5.18-rc6 tree, where it differs (reference section 9).

The lab's published numbers (a 10:1 CP:PAS split at one job) cannot come from the artifact's
queue-depth rule, so the lab's kernel evidently does not have it: dpas follows the lab by
default. Each difference is its own switch, so a user can see which one matters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

#: The kernel's BIO_MAX_VECS: the synchronous direct-I/O path takes at most this many pages
BIO_MAX_VECS = 256
PAGE_BYTES = 4096
#: The largest request the synchronous path (the only one DPAS counts) takes, in bytes
SYNC_PATH_BYTES = BIO_MAX_VECS * PAGE_BYTES


@dataclass(frozen=True, slots=True)
class Rules:
    """One switch per difference of reference section 9 that a model can express."""

    #: 1. qd -= 1 at wait end whenever the sleep returned was not 0, whether or not this
    #: wait did qd += 1 (a PAS->CP switch at wait start leaks +1)
    qd_on_sleep: bool = False
    #: 2. the timer gets the sleep as an unsigned int of ns: dur mod 2^32
    u32_sleep: bool = False
    #: 3. avg_qd = qd_sum*10/count in C int arithmetic: wraps, truncates toward zero
    int_avg_qd: bool = False
    #: 5. submission counts every synchronous polled I/O, and forces INT in INT mode, before
    #: any bucket exists (zero-sector I/Os included)
    count_unbucketed: bool = False
    #: 8. only the synchronous direct-I/O path (<= BIO_MAX_VECS pages) is counted at submission
    sync_path_only: bool = False
    #: 6. LHP/EHP statistics merged from per-CPU sums, each merge truncating the mean
    per_cpu_stats: bool = False
    #: 9. an I/O that did not sleep re-enters the hybrid path (and the evaluation) when its
    #: poll loop gives the CPU up on need_resched
    resched_reentry: bool = False

    @property
    def name(self) -> str:
        """lab, artifact, or the switches that are on (a mix)."""
        if self == LAB:
            return "lab"
        if self == ARTIFACT:
            return "artifact"
        return "+".join(f.name for f in fields(self) if getattr(self, f.name)) or "lab"

    @classmethod
    def named(cls, name: str) -> Rules:
        """``lab`` or ``artifact``; a ValueError naming what is accepted otherwise."""
        try:
            return RULE_SETS[name.strip().lower()]
        except KeyError:
            raise ValueError(f"rules {name!r}: expected lab or artifact") from None


LAB = Rules()
ARTIFACT = Rules(**{f.name: True for f in fields(Rules)})
RULE_SETS = {"lab": LAB, "artifact": ARTIFACT}


def c_int(value: int) -> int:
    """``value`` as a C int (32-bit two's complement) holds it after overflow."""
    return (value + 2**31) % 2**32 - 2**31


def c_div(a: int, b: int) -> int:
    """C's integer division: truncates toward zero (Python's // floors)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b > 0) else -q
