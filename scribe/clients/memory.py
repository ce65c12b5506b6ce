"""How much memory the service uses now, for sizing the PDF parse child (``scribe.clients.pdf``).

The child runs inside the service's memory budget: systemd's ``MemoryMax`` (and Docker's
``--memory``) limit the service's cgroup, which holds the service, its PDF parse children,
Chromium and, without ``DATABASE_URL``, the embedded PostgreSQL. A child sized without looking
at the others can push the whole group over the limit, and the kernel then kills one of them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROC_SELF = Path("/proc/self")
CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class MemoryUse:
    """Bytes in use now, and the limit they are under when the system sets one."""

    used: int
    limit: int | None = None


def memory_use(proc: Path = PROC_SELF, cgroups: Path = CGROUP_ROOT) -> MemoryUse | None:
    """The service's cgroup when it has a memory limit (cgroup v2: its working set, the
    children and Chromium included, and that limit); else this process's resident set; None
    where neither can be read (not Linux)."""
    return _limited_cgroup(proc, cgroups) or _resident(proc)


def _limited_cgroup(proc: Path, cgroups: Path) -> MemoryUse | None:
    try:
        lines = (proc / "cgroup").read_text().splitlines()
        [path] = [line[3:] for line in lines if line.startswith("0::")]  # the cgroup v2 entry
        group = cgroups / path.lstrip("/")
        limit = (group / "memory.max").read_text().strip()
        current = int((group / "memory.current").read_text())
        stat = dict(line.split() for line in (group / "memory.stat").read_text().splitlines())
    except (OSError, ValueError):
        return None
    if not limit.isdigit():  # "max": no limit set on this group
        return None
    # The working set (as the kernel and container tools count it): page cache that is not in
    # active use can be reclaimed before anything is killed.
    used = max(0, current - int(stat.get("inactive_file", 0)))
    return MemoryUse(used=used, limit=int(limit))


def _resident(proc: Path) -> MemoryUse | None:
    try:
        pages = int((proc / "statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return MemoryUse(used=pages * os.sysconf("SC_PAGE_SIZE"))
