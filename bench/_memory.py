"""Peak memory of the benchmark process, alone or with the processes it started (Playwright's
driver, Chromium, page text extractors and the embedded PostgreSQL), sampled in a thread."""

from __future__ import annotations

import contextlib
import threading
import time

import psutil

_DATABASE_NAMES = {"postgres", "pg_ctl"}  # the embedded database server
MB = 2**20


def _group(proc: psutil.Process) -> str:
    name = proc.name()
    if name in _DATABASE_NAMES:
        return "database"
    if name.startswith("node") or "playwright" in name:
        return "driver"
    if "chrom" in name or "headless" in name:
        return "browser"
    if name.startswith("python") and any("extract_child" in part for part in proc.cmdline()):
        return "extract"
    return "other"


class PeakMemory:
    """This process's peak RSS; with ``children`` also the peak PSS and RSS summed over this
    process and its descendants, leaving out ``exclude`` (the fakes): what the service's cgroup
    holds (the embedded database included, when it is the database; its share is also kept
    apart, ``peak_database_pss``, for a comparison without it).

    PSS is the honest sum: Chromium's processes share most of their pages, so summing RSS
    counts those pages once per process. Both are kept; the breakdown is that of the peak-PSS
    sample.
    """

    def __init__(
        self,
        *,
        children: bool,
        exclude: set[int],
        database: psutil.Process | None = None,
        interval: float = 0.05,
    ) -> None:
        self.children = children
        self._database = database
        self.executable: str | None = None
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_rss_sum = 0
        self.peak_pss_without_database = 0
        self.breakdown: dict[str, tuple[int, int]] = {}  # group -> (processes, PSS bytes)
        self._exclude = exclude
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-memory", daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.peak_rss = max(self.peak_rss, me.memory_info().rss)
            if self.children:
                self._sample_tree(me)
            time.sleep(self._interval)

    def _sample_tree(self, me: psutil.Process) -> None:
        info = me.memory_full_info()
        groups: dict[str, tuple[int, int]] = {"process": (1, info.pss)}
        rss_sum = info.rss
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # it may exit between listing and reading
                if child.pid in self._exclude:
                    continue
                child_info = child.memory_full_info()
                group = _group(child)
                count, pss = groups.get(group, (0, 0))
                groups[group] = (count + 1, pss + child_info.pss)
                rss_sum += child_info.rss
        if self._database is not None:  # a daemon: not among this process's children
            count, pss = 0, 0
            for process in self._database_processes():
                with contextlib.suppress(psutil.Error):
                    info_db = process.memory_full_info()
                    count, pss, rss_sum = count + 1, pss + info_db.pss, rss_sum + info_db.rss
            groups["database"] = (count, pss)
        total = sum(pss for _, pss in groups.values())
        self.peak_rss_sum = max(self.peak_rss_sum, rss_sum)
        without = total - groups.get("database", (0, 0))[1]
        self.peak_pss_without_database = max(self.peak_pss_without_database, without)
        if total > self.peak_pss:
            self.peak_pss, self.breakdown = total, groups

    def _database_processes(self) -> list[psutil.Process]:
        assert self._database is not None
        try:
            return [self._database, *self._database.children(recursive=True)]
        except psutil.Error:
            return []

    def summary(self) -> str:
        """One line for the table."""
        line = f"RSS process {self.peak_rss / MB:6.1f} MB"
        if not self.children:
            return line
        parts = ", ".join(
            f"{group} {pss / MB:.0f}" + (f" in {count} procs" if count > 1 else "")
            for group, (count, pss) in self.breakdown.items()
        )
        return (
            f"{line}; with its children: PSS {self.peak_pss / MB:6.1f} MB ({parts}), "
            f"without the database {self.peak_pss_without_database / MB:6.1f} MB; "
            f"RSS summed {self.peak_rss_sum / MB:6.1f} MB"
        )

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
