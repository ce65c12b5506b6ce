"""Database access: the only package that talks to asyncpg."""

from __future__ import annotations

from scribe.db.embedded import start_embedded
from scribe.settings import Settings


async def resolve_dsn(settings: Settings) -> str:
    """``DATABASE_URL`` when set, else the embedded server's DSN (started or reused)."""
    if settings.database_url is not None:
        return settings.database_url.get_secret_value()
    return await start_embedded(settings.data_dir)
