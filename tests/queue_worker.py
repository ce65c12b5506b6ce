"""A real worker process for the multi-process tests: ``python -m tests.queue_worker``.

It runs ``scribe.worker.run_worker`` (the code behind ``scribe worker``, signal handling
included) with the deterministic test steps, against the database given on the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from scribe.settings import Settings
from scribe.worker import run_worker
from tests.fakes.steps import deterministic_pipeline

TEST_JWT_SECRET = "test-secret-for-hs256-tokens-0123456789abcdef"


def main() -> int:
    """Parse the options, run the worker, exit 0 after a clean stop."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--lease", type=float, default=2.0)
    parser.add_argument("--poll", type=float, default=0.5)
    parser.add_argument("--reaper", type=float, default=0.3)
    parser.add_argument("--grace", type=float, default=5.0)
    parser.add_argument("--retry-base", type=float, default=0.01)
    parser.add_argument("--max-crashes", type=int, default=10)
    parser.add_argument("--no-listen", action="store_true")
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(process)d %(name)s %(message)s"
    )
    settings = Settings(
        _env_file=None,
        database_url=args.dsn,
        supabase_jwt_secret=TEST_JWT_SECRET,
        scribe_data_dir=args.data_dir,
        scribe_concurrency=args.concurrency,
        scribe_lease_seconds=args.lease,
        scribe_poll_seconds=args.poll,
        scribe_reaper_seconds=args.reaper,
        scribe_shutdown_grace_seconds=args.grace,
        scribe_retry_base_seconds=args.retry_base,
        scribe_retry_max_seconds=1.0,
        scribe_max_crashes=args.max_crashes,
        scribe_listen=not args.no_listen,
    )
    asyncio.run(
        run_worker(settings, lambda deps: deterministic_pipeline(args.log_dir), drain=args.drain)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
