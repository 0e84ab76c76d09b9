"""The guest's whole userspace: busybox, fio with its libraries, the NVMe modules, /init."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

from dpas.vm.cpio import Cpio
from dpas.vm.kernel import (
    GuestKernel,
    VmError,
    module_bytes,
    module_file_name,
    module_name,
    module_order,
)
from dpas.vm.python import GuestPython

INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mkdir -p /proc /sys /dev /tmp
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs dev /dev
[ -d /sys/kernel/tracing ] && mount -t tracefs tracefs /sys/kernel/tracing
for m in {modules}; do insmod /lib/modules/$m; done
{nvme_load}
n=0
while [ ! -e /sys/block/nvme0n1 ] && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done
if [ ! -e /sys/block/nvme0n1 ]; then
    # no drive after 20 s: say whether the driver is there (built in or loaded, it has
    # /sys/module/nvme); the host turns the marker into its error
    if [ -d /sys/module/nvme ]; then driver=loaded; else driver=missing; fi
    echo "dpas guest: no /sys/block/nvme0n1 (nvme driver $driver)"
    if [ -e /dpas/plan.sh ]; then
        echo "@@NO_NVME $driver" > /dev/ttyS1
        poweroff -f
    fi
fi
if [ -e /dpas/plan.sh ]; then
    . /dpas/plan.sh > /dev/ttyS1 2>&1
    poweroff -f
fi
echo "dpas guest: $(uname -r); /sys/block/nvme0n1/queue is the polled drive; poweroff -f ends it"
exec setsid cttyhack sh
"""


def _libraries(binary: Path) -> list[Path]:
    """What the dynamic loader needs for ``binary`` (from ldd), the loader included."""
    try:
        done = subprocess.run(["ldd", str(binary)], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise VmError("ldd not found: cannot collect fio's libraries") from None
    libs = []
    for line in done.stdout.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(Path(m[1]))
    return libs


def build(
    kernel: GuestKernel,
    out: Path,
    plan: str | None,
    poll_queues: int = 2,
    python: GuestPython | None = None,
) -> Path:
    """Write the initramfs to ``out``: with a plan it runs it and powers off, without one
    it leaves a shell (dpas vm shell); with ``python``, dpas's in-guest Python too."""
    busybox = shutil.which("busybox")
    fio = shutil.which("fio")
    if busybox is None:
        raise VmError("busybox not found: apt-get install busybox-static")
    if fio is None:
        raise VmError("fio not found: apt-get install fio")
    modules = module_order(kernel.modules) if kernel.modules is not None else []
    nvme = next((m for m in modules if module_name(m) == "nvme"), None)
    load = [module_file_name(m) for m in modules if m is not nvme]
    nvme_load = (
        f"insmod /lib/modules/{module_file_name(nvme)} poll_queues={poll_queues}"
        if nvme is not None
        else f"echo {poll_queues} > /sys/module/nvme/parameters/poll_queues 2>/dev/null"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:
        cpio = Cpio(f)
        cpio.file("init", INIT.format(modules=" ".join(load), nvme_load=nvme_load).encode(), 0o755)
        cpio.copy(Path(busybox), "bin/busybox")
        cpio.copy(Path(fio), "usr/bin/fio")
        libraries = set(_libraries(Path(fio)))
        if python is not None:
            for path in python.files:
                cpio.copy(path)
                if path.suffix == ".so" or ".so." in path.name or path == python.interpreter:
                    libraries.update(_libraries(path))
            libraries -= set(python.files)
        for lib in sorted(libraries):
            cpio.copy(lib)
        for module in modules:  # decompressed: busybox insmod reads no .ko.xz
            cpio.file(f"lib/modules/{module_file_name(module)}", module_bytes(module))
        if plan is not None:
            cpio.file("dpas/plan.sh", plan.encode(), 0o755)
        cpio.close()
    return out
