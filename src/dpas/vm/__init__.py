"""``dpas vm``: the lab's QEMU guest with a polled NVMe drive, built and booted in one command."""
