"""Debian packages from any suite, through an apt configuration of dpas's own.

The host's apt sources, lists and caches are never written: this configuration has its own
sources list (the host's Debian mirror, one suite, main), its own lists and its own package
cache, all under the dpas cache folder; only the host's keyring is read, to check signatures.
"""

from __future__ import annotations

import re
from pathlib import Path

from dpas.vm.kernel import VmError, run_tool

KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
DEFAULT_MIRROR = "http://deb.debian.org/debian"


def host_mirror(etc_apt: Path = Path("/etc/apt")) -> str:
    """The Debian mirror the host's own sources name (not its security archive)."""
    texts = []
    for path in [etc_apt / "sources.list", *sorted((etc_apt / "sources.list.d").glob("*"))]:
        if path.suffix in (".list", ".sources") and path.is_file():
            texts.append(path.read_text(errors="replace"))
    for text in texts:
        for url in re.findall(r"(?:URIs:|^deb(?:\s+\[[^\]]*\])?)\s+(\S+)", text, re.M):
            if url.rstrip("/").endswith("/debian"):
                return url.rstrip("/")
    return DEFAULT_MIRROR


class PrivateApt:
    """apt-get and apt-cache for one suite, with every state folder under ``root``."""

    def __init__(self, root: Path, suite: str, mirror: str | None = None) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9.-]{1,40}", suite):
            raise VmError(f"debian:{suite}: not a suite name (sid, trixie, trixie-backports)")
        self.root, self.suite = root, suite
        self.mirror = mirror or host_mirror()
        self.sources = root / "sources.list"
        self.lists = root / "lists"
        self.cache = root / "cache"

    def options(self) -> list[str]:
        return [
            "-o", f"Dir::Etc::sourcelist={self.sources}",
            "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::Lists={self.lists}",
            "-o", f"Dir::Cache={self.cache}",
            "-o", f"Dir::Cache::archives={self.cache / 'archives'}",
            "-o", "APT::Sandbox::User=root",
        ]  # fmt: skip

    def update(self) -> None:
        """Fetch the suite's package lists (about a second for sid)."""
        for folder in (self.lists / "partial", self.cache / "archives" / "partial"):
            folder.mkdir(parents=True, exist_ok=True)
        signed = f"[signed-by={KEYRING}] " if KEYRING.exists() else ""
        self.sources.write_text(f"deb {signed}{self.mirror} {self.suite} main\n")
        done = self._run(["apt-get", *self.options(), "update"], f"apt-get update ({self.suite})")
        # apt-get update exits 0 on a fetch failure: its reason is on the line after "Err:"
        # or in a "W: Failed to fetch" line, not on the "Err:" line itself
        lines = done.splitlines()
        failed = [line for line in lines if line.startswith("E:")]
        failed += [line for line in lines if line.startswith("W: Failed to fetch")]
        failed += [
            f"{line.strip()}: {lines[i + 1].strip()}" if i + 1 < len(lines) else line
            for i, line in enumerate(lines)
            if line.startswith("Err:")
        ]
        if failed or not any(self.lists.glob("*_Packages*")):
            why = failed[0] if failed else "no package list arrived"
            raise VmError(f"debian:{self.suite}: apt-get update failed: {why}")

    def depends(self, package: str) -> list[str]:
        """What ``package`` depends on (its Depends: lines)."""
        out = self._run(["apt-cache", *self.options(), "depends", package], "apt-cache depends")
        return re.findall(r"^\s*\|?Depends: (\S+)", out, re.M)

    def names(self, prefix: str) -> list[str]:
        """Every package of the suite whose name starts with ``prefix``."""
        out = self._run(["apt-cache", *self.options(), "pkgnames", prefix], "apt-cache pkgnames")
        return sorted(out.split())

    def download(self, package: str, into: Path) -> Path:
        """The package's .deb, fetched into ``into``."""
        into.mkdir(parents=True, exist_ok=True)
        for old in into.glob(f"{package}_*.deb"):
            old.unlink()
        self._run(["apt-get", *self.options(), "download", package], f"apt-get download {package}",
                  cwd=into)  # fmt: skip
        debs = sorted(into.glob(f"{package}_*.deb"))
        if not debs:
            raise VmError(f"apt-get download {package} left no .deb in {into}")
        return debs[-1]

    def _run(self, argv: list[str], what: str, cwd: Path | None = None) -> str:
        done = run_tool(argv, cwd or self.root, what)
        return done.stdout + done.stderr
