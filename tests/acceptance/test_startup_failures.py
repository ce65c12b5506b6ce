"""Start-up failures an operator meets end ``scribe`` with one line naming the problem and its
fix, no traceback, and the exit status of its kind (docs/operating.md)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from scribe.db.pgbin import bundled_major
from tests.data_support import scribe


def _free_port() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


async def test_a_data_directory_of_another_major_is_refused_by_every_command(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "postgres").mkdir(parents=True)
    (data_dir / "postgres" / "PG_VERSION").write_text("15\n")
    for command in (("serve", "--port", _free_port()), ("worker",), ("migrate",), ("backup",)):
        refused = await scribe(*command, data_dir=data_dir)
        assert refused.code == 5, (command, refused.stderr)
        [line] = refused.error_lines
        assert f"PostgreSQL 15 and this install runs PostgreSQL {bundled_major()}" in line
        assert str(data_dir / "postgres") in line and "scribe db upgrade" in line
    assert (data_dir / "postgres" / "PG_VERSION").read_text() == "15\n"  # untouched


async def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = await scribe("serve", "--port", str(port), data_dir=tmp_path / "data")
    assert refused.code == 7
    [line] = refused.error_lines
    assert f"127.0.0.1:{port}" in line and "another process listens there" in line
    assert not (tmp_path / "data" / "postgres").exists()  # no database was started for it


async def test_an_unreachable_database_url_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        url = f"postgresql://scribe:secret@127.0.0.1:{port}/scribe"
        for command in (("serve", "--port", _free_port()), ("worker",)):
            failed = await scribe(*command, data_dir=tmp_path / "data", DATABASE_URL=url)
            assert failed.code == 4, (command, failed.stderr)
            [line] = failed.error_lines
            assert "cannot connect to the database" in line
            assert "secret" not in failed.stderr
            assert "Application startup failed" not in failed.stderr


@pytest.mark.slow
async def test_an_embedded_server_that_cannot_start_is_one_line_with_its_reason(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    created = await scribe("migrate", data_dir=data_dir)
    assert created.code == 0, created.stderr
    with (data_dir / "postgres" / "postgresql.conf").open("a") as conf:
        conf.write("no_such_setting = 1\n")
    for command in (("serve", "--port", _free_port()), ("migrate",)):
        failed = await scribe(*command, data_dir=data_dir)
        assert failed.code == 4, (command, failed.stderr)
        [line] = failed.error_lines
        assert "could not start the embedded PostgreSQL" in line
        assert "postgresql.conf" in line and "contains errors" in line
