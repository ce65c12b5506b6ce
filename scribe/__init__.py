"""Scribe: personalized academic outreach emails from one asyncio process."""

__version__ = "0.1.0"
