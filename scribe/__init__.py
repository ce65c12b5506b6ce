"""Scribe: personalized academic outreach emails from one asyncio process."""

import os
import sys

__version__ = "0.1.0"

# pydantic loads every plugin registered under its entry-point group when the first model class
# is built (scribe.settings does that early). logfire registers one, and loading it imports
# logfire, opentelemetry and protobuf (about 14 MiB) even with no LOGFIRE_TOKEN. Scribe uses no
# pydantic plugin, so none is loaded: pydantic's documented switch, set before any model exists
# (an operator's own value wins).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# httpx's package imports its command-line client (httpx._main: click, rich, pygments; ~0.1 s of
# every start) whenever those are installed, and logfire brings rich. Scribe never runs httpx's
# CLI: a None entry makes that import fail, which httpx handles as "CLI extras not installed"
# (its documented fallback). Without effect if httpx was imported first.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
