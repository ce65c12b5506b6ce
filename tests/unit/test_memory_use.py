"""Reading the service's memory use: its cgroup's working set under a limit, else its resident
set (fake /proc and /sys/fs/cgroup trees)."""

from __future__ import annotations

import os
from pathlib import Path

from scribe.clients.memory import MemoryUse, memory_use


def tree(tmp_path: Path, *, limit: str | None) -> tuple[Path, Path]:
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    proc.mkdir()
    (proc / "statm").write_text("90000 35000 2000 300 0 50000 0\n")
    (proc / "cgroup").write_text("0::/system.slice/scribe.service\n")
    if limit is not None:
        group = cgroups / "system.slice" / "scribe.service"
        group.mkdir(parents=True)
        (group / "memory.max").write_text(f"{limit}\n")
        (group / "memory.current").write_text(f"{400 << 20}\n")
        (group / "memory.stat").write_text(f"anon {250 << 20}\ninactive_file {100 << 20}\n")
    return proc, cgroups


def test_a_limited_cgroup_gives_its_working_set_and_limit(tmp_path: Path) -> None:
    proc, cgroups = tree(tmp_path, limit=str(750 << 20))
    assert memory_use(proc, cgroups) == MemoryUse(used=300 << 20, limit=750 << 20)


def test_without_a_limit_the_resident_set_counts(tmp_path: Path) -> None:
    resident = MemoryUse(used=35000 * os.sysconf("SC_PAGE_SIZE"))
    assert memory_use(*tree(tmp_path, limit="max")) == resident
    other = tmp_path / "v1"
    other.mkdir()
    assert memory_use(*tree(other, limit=None)) == resident  # no cgroup v2 files at all


def test_nothing_readable_is_none(tmp_path: Path) -> None:
    assert memory_use(tmp_path / "no-proc", tmp_path / "no-cgroup") is None


def test_this_process_can_be_measured() -> None:
    use = memory_use()
    assert use is not None and use.used > 10 << 20
