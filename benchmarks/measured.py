"""A benchmark's results as docs/data keeps them: what was measured, the command, the date and
the machine, beside the numbers, so a page that shows them can say where they came from.

    from measured import save
    save(Path("docs/data/NAME.json"), "what it measures", results)

docs/make.py renders the pages' blocks from such files; it never reruns a timing.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any


def _os_name() -> str:
    """PRETTY_NAME of /etc/os-release ("Debian GNU/Linux 12 (bookworm)"), or the platform's."""
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def _qemu_version() -> str | None:
    """QEMU's own version line, where QEMU is installed (guest figures run under it)."""
    qemu = shutil.which("qemu-system-x86_64")
    if qemu is None:
        return None
    done = subprocess.run([qemu, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.splitlines()[0] if done.stdout else None


def machine() -> dict[str, Any]:
    """The machine a timing was taken on: its cores, OS, kernel, Python, QEMU and its load
    when the measurement ended (a shared machine's figures vary with it)."""
    return {
        "cores": os.cpu_count(),
        "os": _os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "qemu": _qemu_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def save(path: Path, what: str, results: Any) -> None:
    """Write ``results`` with the command that made them (this process's argv), today's date
    (UTC) and the machine; sorted keys so a rerun's diff shows only what changed."""
    record = {
        "what": what,
        "command": shlex.join(["python", *sys.argv]),
        "date": datetime.datetime.now(datetime.UTC).date().isoformat(),
        "machine": machine(),
        "results": results,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {path}")
