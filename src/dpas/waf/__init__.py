"""Write amplification from a drive's indirection unit (IU), from the host's writes."""

from dpas.waf.amplification import (
    Amplification,
    SizeShare,
    amplification,
    by_size,
    check_iu,
    media_bytes,
    worst_media,
    worst_waf,
)

__all__ = [
    "Amplification",
    "SizeShare",
    "amplification",
    "by_size",
    "check_iu",
    "media_bytes",
    "worst_media",
    "worst_waf",
]
