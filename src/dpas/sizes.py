"""Sizes in bytes as fio writes them: dpas follows fio's option names, so it reads fio's words.

fio (parse.c: ``str_to_decimal``, ``get_mult_bytes``, with its default ``kb_base=1024``) reads
a whole number with an optional suffix, any case: k or kb is 1024, m or mb 1024^2, then g, t,
p; kib is 1000, mib 1000^2, and so on up to pib (fio's compatibility rule: with kb_base=1024
"the unit prefixes are opposite from those specified in the SI and IEC standards", so 4KiB is
4000 bytes, as ``fio --bs=4KiB`` runs). A hex number (0x1000) takes no suffix.

dpas is stricter than fio where fio misreads rather than refuses: "4.5k" (fio: 4 bytes),
"4x" (fio: 4), a sign, or fio's percentages are errors here, not silently something else.
"""

from __future__ import annotations

import re

from dpas.errors import LimitError

#: a suffix's (lower-case) multiplier under fio's default kb_base=1024
MULTIPLIERS: dict[str, int] = {"": 1, "b": 1}
for _power, _prefix in enumerate("kmgtp", start=1):
    MULTIPLIERS[_prefix] = MULTIPLIERS[_prefix + "b"] = 1024**_power
    MULTIPLIERS[_prefix + "ib"] = 1000**_power

DECIMAL = re.compile(r"([0-9]{1,20})([a-z]{0,3})")
HEX = re.compile(r"0x([0-9a-f]{1,16})")
#: what the words look like, for an error message
ACCEPTED = "a size as fio writes one: bytes, or with k, m, g (powers of 1024), such as 4k or 1m"


def parse_size(text: str) -> int | None:
    """``text`` in bytes as fio reads it, or None where fio's rule does not read it whole."""
    word = text.strip().lower()
    if found := HEX.fullmatch(word):
        return int(found[1], 16)
    found = DECIMAL.fullmatch(word)
    if found is None or found[2] not in MULTIPLIERS:
        return None
    return int(found[1]) * MULTIPLIERS[found[2]]


def show_size(n: int) -> str:
    """``n`` bytes as a user types them to fio: 4k, 128k, 1m, 2g; plain bytes (1000, 4000)
    where no power of 1024 divides it whole."""
    for power in range(5, 0, -1):
        unit = 1024**power
        if n and n % unit == 0:
            return f"{n // unit}{'kmgtp'[power - 1]}"
    return str(n)


def checked_size(what: str, text: str, low: int, high: int, step: int = 1) -> int:
    """``text`` in bytes (``parse_size``), in [low, high] and a multiple of ``step``;
    otherwise a LimitError naming ``what`` (when given), the word as typed and the rule."""
    multiple = f", a multiple of {step}" if step > 1 else ""
    accepted = (
        "expected a size as fio writes one (bytes, or k, m, g: powers of 1024, as in 4k) "
        f"from {show_size(low)} to {show_size(high)}{multiple}"
    )
    shown = f"{what + ' ' if what else ''}{text.strip() or repr(text)}"
    size = parse_size(text)
    if size is None:
        raise LimitError(f"{shown}: {accepted}")
    if not low <= size <= high or size % step:
        if not text.strip().isdigit():
            shown += f" is {size} bytes"
            if "ib" in text.lower():
                shown += " (fio reads KiB, MiB, GiB as powers of 1000)"
        raise LimitError(f"{shown}: {accepted}")
    return size
