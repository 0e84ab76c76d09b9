"""How much longer a command of more than 4 KiB keeps the drive busy than a 4 KiB one.

A synchronous read at depth 1 does not see the drive's sequential bandwidth: that figure is
many commands in flight over every channel. One command's bytes sit where the drive wrote
them: ``stripe_bytes`` of consecutive data on one die, the next stripe on the next channel.
They cross that die's flash channel (``channel_mb_s``) and then the host link
(``bandwidth_mb_s``, the datasheet's sequential read: the link is what caps it). The
controller streams what it has read on to the host, so the slower of the two paths sets the
pace; a 4 KiB read's own transfer is already inside ``read_ns``. A drive whose layout is not
modelled (``channels`` 0) pays the link only. docs/profiles.md gives each drive's numbers
and their sources.
"""

from __future__ import annotations

from dpas.sim.profile import DeviceProfile

#: the size ``read_ns`` and ``write_ns`` are given for
BASE_BYTES = 4096


def busiest_channel_bytes(size: int, stripe_bytes: int, channels: int) -> int:
    """The bytes of a ``size``-byte command that cross its busiest channel: up to a stripe
    sits on one die; more stripes spread over the channels, a channel taking every
    ``channels``-th one."""
    stripes = -(-size // stripe_bytes)
    return -(-stripes // channels) * min(size, stripe_bytes)


def path_ns(device: DeviceProfile, size: int) -> float:
    """The time a ``size``-byte command's data takes through the slower of its paths."""
    flash = busiest_channel_bytes(size, device.stripe_bytes, device.channels)
    return max(size * ns_per_byte(device.bandwidth_mb_s), flash * ns_per_byte(device.channel_mb_s))


def ns_per_byte(mb_s: float) -> float:
    """A path's time per byte (0 for a path not given)."""
    return 1e3 / mb_s if mb_s else 0.0


def transfer_ns(device: DeviceProfile, size: int) -> float:
    """The device time a ``size``-byte command takes beyond a 4 KiB one (0 up to 4 KiB)."""
    if size <= BASE_BYTES:
        return 0.0
    if not device.channels:  # the link only
        return (size - BASE_BYTES) * ns_per_byte(device.bandwidth_mb_s)
    return path_ns(device, size) - path_ns(device, BASE_BYTES)
