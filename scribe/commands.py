"""``scribe generate`` (one email in-process, no server, no database), ``scribe demo`` (three
sample recipients through the real queue on the embedded database), and the operator's data
commands: ``scribe backup``, ``scribe restore`` and ``scribe db upgrade`` (scribe.db does the
work; these choose the database and the programs from the settings, and print)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TextIO

import httpx

from scribe.clients import Clients, open_clients
from scribe.clients.offline import OFFLINE
from scribe.db import emails, queue_items, resolve_dsn, users
from scribe.db.backup import Database, backup, restore
from scribe.db.pgbin import bundled_bin
from scribe.db.queue_items import NewItem, QueueItemView
from scribe.db.upgrade import upgrade
from scribe.errors import (
    ConfigurationError,
    ScribeError,
    TransientStepError,
    UpstreamRejected,
    UpstreamUnavailable,
)
from scribe.settings import Settings
from scribe.steps.pipeline import (
    EmailInputs,
    EmailState,
    Step,
    build_pipeline,
    email_metadata,
    start_state,
)

DEMO_EMAIL = "demo@scribe.local"
DEMO_USER_ID = uuid.uuid5(uuid.NAMESPACE_URL, f"mailto:{DEMO_EMAIL}")
DEMO_POLL_SECONDS = 0.25  # progress refresh; the consumer itself is woken by NOTIFY
DEMO_TEMPLATE = """Dear {{professor_name}},

I am a second-year computer science student, and I have been reading about {{paper_title}}. \
Your work on {{research_area}} is close to what I would like to study, and I would be glad to help \
in your group this summer, for example by running experiments or cleaning data.

Would you have ten minutes to talk in the coming weeks?

Best regards,
Sam Student"""
DEMO_RECIPIENTS = (
    NewItem("Yoshua Bengio", "deep learning and AI safety"),
    NewItem("Fei-Fei Li", "computer vision and ImageNet"),
    NewItem("Daphne Koller", "probabilistic graphical models"),
)


def providers_line(settings: Settings, clients: Clients) -> str:
    """Which providers write the emails: real models (keys set) or the offline rules."""
    models = {
        "parser": clients.parser_llm.model,
        "composer": clients.composer_llm.model,
    }
    search = "Exa" if settings.exa_api_key else "skipped (no EXA_API_KEY)"
    kind = "offline provider (no API key set)" if OFFLINE in models.values() else "real providers"
    listed = ", ".join(f"{role} {model}" for role, model in models.items())
    return f"Providers: {kind}: {listed}; web search {search}; arXiv {settings.arxiv_api_url}"


# --- scribe generate ---


async def generate(
    settings: Settings,
    *,
    template: str,
    name: str,
    interest: str,
    as_json: bool,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the four steps in this process and print the email (or, with ``as_json``, the full
    result); progress goes to ``err``. 0 on success, 1 when a step failed: its own error, a
    provider's (unavailable, paused, rejected) or the step timeout, said in one line on ``err``.
    Each step has SCRIBE_STEP_TIMEOUT_SECONDS, rate-limit waits included (no queue to wait in)."""
    state = start_state(
        EmailInputs(
            queue_item_id=uuid.uuid4(),
            user_id=uuid.uuid4(),
            recipient_name=name,
            recipient_interest=interest,
            email_template=template,
        )
    )
    async with (
        httpx.AsyncClient(timeout=httpx.Timeout(10.0), follow_redirects=False) as http,
        open_clients(settings, http) as clients,
    ):
        print(providers_line(settings, clients), file=err)
        pipeline = build_pipeline(clients)
        for number, step in enumerate(pipeline, 1):
            label = f"[{number}/{len(pipeline)}] {step.name}"
            print(f"{label} ...", file=err, flush=True)
            started = time.monotonic()
            try:
                state = await _run_step(step, state, settings.scribe_step_timeout_seconds)
            except (ScribeError, TimeoutError) as exc:
                seconds = time.monotonic() - started
                print(f"{label} failed after {seconds:.1f} s: {_why(exc)}", file=err)
                return 1
            seconds = round(time.monotonic() - started, 3)
            timings = {**state.step_timings, step.name: seconds}
            state = state.model_copy(update={"step_timings": timings})
            print(f"{label} done in {seconds:.2f} s", file=err, flush=True)
    email = state.email_composer
    if as_json:
        result = {
            "recipient_name": name,
            "recipient_interest": interest,
            "email_message": email.email_message if email else None,
            "is_confident": email.is_confident if email else False,
            "template_type": state.template_parser.template_type if state.template_parser else None,
            "metadata": email_metadata(state),
        }
        print(json.dumps(result, indent=2, default=str), file=out)
    else:
        print(render_email(state), file=out)
    return 0


def _why(exc: ScribeError | TimeoutError) -> str:
    """A step's failure in one line, naming the provider account when one failed."""
    why = str(exc) or "timed out"  # (a client's own timeout may carry no message)
    provider = exc.provider if isinstance(exc, UpstreamUnavailable | UpstreamRejected) else ""
    return why if why.startswith(provider) else f"{provider}: {why}"


async def _run_step(step: Step, state: EmailState, seconds: float) -> EmailState:
    """Run ``step`` within ``seconds``; past them a TransientStepError that says so."""
    limit = asyncio.timeout(seconds)
    try:
        async with limit:
            return await step.run(state)
    except TimeoutError as exc:
        if not limit.expired():
            raise  # a client's own timeout, not the step's
        raise TransientStepError(
            f"timed out after {seconds:g} s (SCRIBE_STEP_TIMEOUT_SECONDS)"
        ) from exc


def render_email(state: EmailState) -> str:
    """The email, its confidence with the reasons, each fill with its sources, and the
    sources (those dropped as not about the recipient counted)."""
    email, parsed = state.email_composer, state.template_parser
    reasons = email.generation_metadata.not_confident_reasons if email else []
    confident = email is not None and email.is_confident
    confidence = "confident" if confident else "not confident: " + "; ".join(reasons)
    message = email.email_message if email else ""
    lines = ["", message, "", "-" * 72, f"Confidence: {confidence}"]
    template_type = parsed.template_type if parsed else None
    lines.append(f"Template type: {template_type}; model: {email.model if email else None}")
    grounding = email.grounding if email else None
    if grounding is None:  # an email composed before grounding: its research URLs
        return "\n".join([*lines, *_research_lines(state)])
    lines.append("Fills:" if grounding.fills else "Fills: none")
    for fill in grounding.fills:
        cited = ", ".join(fill.sources) or "no source"
        mark = "supported" if fill.supported else "UNSUPPORTED"
        lines.append(f"  {fill.placeholder} = {fill.value!r} [{cited}] {mark}")
    lines += [f"  ! {c.placeholder}: {c.text!r} ({c.reason})" for c in grounding.unsupported]
    lines.append("Sources:" if grounding.sources else "Sources: none")
    lines += [f"  {s.id} {s.kind} {s.url} {s.title}" for s in grounding.sources]
    if grounding.dropped:
        lines.append(f"Dropped as not about the recipient: {len(grounding.dropped)}")
        lines += [f"  {d.url} ({d.reason})" for d in grounding.dropped]
    return "\n".join(lines)


def _research_lines(state: EmailState) -> list[str]:
    research, papers = state.web_scraper, state.arxiv_helper
    sources = [f"  {url}" for url in (research.scraped_urls if research else [])]
    sources += [
        f"  arXiv {p.arxiv_url} {p.title} ({p.year})"
        for p in (papers.arxiv_papers if papers else [])
    ]
    return ["Sources:" if sources else "Sources: none", *sources]


# --- scribe demo ---


async def demo(settings: Settings, out: TextIO = sys.stdout) -> int:
    """Queue three sample recipients for a demo user, run the real consumer until the queue is
    drained while printing each item's progress, then print the emails. 0 when all three
    completed."""
    from scribe.deps import open_deps
    from scribe.worker import open_consumer, production_pipeline

    started = time.monotonic()
    print("Starting the database and applying migrations ...", file=out, flush=True)
    async with open_deps(settings) as deps:
        print(providers_line(settings, deps.clients), file=out)
        pool = deps.pool
        if await users.get(pool, DEMO_USER_ID) is None:
            await users.create(pool, DEMO_USER_ID, DEMO_EMAIL, "Demo user")
        ids = await queue_items.enqueue(
            pool,
            DEMO_USER_ID,
            DEMO_RECIPIENTS,
            DEMO_TEMPLATE,
            max_attempts=settings.scribe_max_attempts,
        )
        print(f"Queued {len(ids)} recipients as {DEMO_EMAIL}.", file=out, flush=True)

        consumer = open_consumer(deps, production_pipeline(deps))
        worker = asyncio.create_task(consumer.run(drain=True), name="demo-consumer")

        async def items() -> dict[uuid.UUID, QueueItemView]:
            rows = await queue_items.list_recent(pool, DEMO_USER_ID)
            return {row.id: row for row in rows if row.id in ids}

        await watch(items, worker, lambda line: print(_elapsed(started) + line, file=out))
        await worker
        final = await items()
        completed = 0
        for item_id in ids:
            item = final.get(item_id)
            if item is None or item.status != "completed" or item.email_id is None:
                status = "missing" if item is None else item.status
                error = "" if item is None or not item.error_message else f": {item.error_message}"
                print(f"\n=== {_name(item)}: {status}{error}", file=out)
                continue
            email = await emails.get(pool, item.email_id, DEMO_USER_ID)
            if email is None:
                continue
            completed += 1
            print(f"\n=== Email to {email.recipient_name} ({email.template_type})", file=out)
            print(email.email_message, file=out)
            model = email.metadata.get("model")
            print(f"--- confident: {email.is_confident}; model: {model}", file=out)
        seconds = time.monotonic() - started
        print(f"\n{completed} of {len(ids)} emails completed in {seconds:.1f} s.", file=out)
    return 0 if completed == len(ids) else 1


async def watch(
    items: Callable[[], Any],
    worker: asyncio.Task[None],
    emit: Callable[[str], None],
) -> None:
    """Print a line whenever an item's status, step, position or error changes (the fields the
    SSE stream carries), until ``worker`` has drained and no item is being processed: another
    process on the same database (a running ``scribe serve``) may have claimed some of them."""
    seen: dict[uuid.UUID, tuple[Any, ...]] = {}
    while True:
        current: dict[uuid.UUID, QueueItemView] = await items()
        for item_id, item in current.items():
            state = (item.status, item.current_step, item.position, item.error_message)
            if seen.get(item_id) != state:
                seen[item_id] = state
                emit(_progress(item))
        if worker.done():
            if all(item.status != "processing" for item in current.values()):
                return
            await asyncio.sleep(DEMO_POLL_SECONDS)
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(worker), DEMO_POLL_SECONDS)


def _progress(item: QueueItemView) -> str:
    detail = item.current_step or ""
    if item.status == "pending" and item.position is not None:
        detail = f"position {item.position}"
    elif item.status in ("completed", "failed"):
        detail = item.error_message or ""
    return f"{item.recipient_name:<16} {item.status:<10} {detail}".rstrip()


def _name(item: QueueItemView | None) -> str:
    return "item" if item is None else item.recipient_name


def _elapsed(started: float) -> str:
    return f"[{time.monotonic() - started:6.1f} s] "


# ===== the operator's data commands =====


async def _data_database(settings: Settings, pg_bin: Path | None) -> Database:
    """The database a backup or restore is about, with the directory of its client programs:
    the embedded server's own (the bundled major) or, for DATABASE_URL, ``--pg-bin``/PATH."""
    dsn = await resolve_dsn(settings)
    if pg_bin is None and settings.database_url is None:
        pg_bin = bundled_bin()
    return Database(dsn, pg_bin)


async def backup_command(settings: Settings, args: argparse.Namespace) -> None:
    """``scribe backup``: write one, print its path and size and what was pruned."""
    database = await _data_database(settings, args.pg_bin)
    written = await backup(database, args.to or settings.data_dir / "backups", args.keep)
    print(f"{written.path} {_size(written.size)}")
    for removed in written.removed:
        print(f"removed {removed} (keeping the newest {args.keep})")


def _size(size: int) -> str:
    """A byte count for people: 1.4 MiB."""
    value, unit = float(size), "B"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            break
        value /= 1024
    return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"


async def restore_command(settings: Settings, args: argparse.Namespace) -> None:
    """``scribe restore``: restore, migrate, and say what came back."""
    database = await _data_database(settings, args.pg_bin)
    restored = await restore(database, args.file, force=args.force)
    rows = sum(restored.rows.values())
    print(f"restored {args.file}: {len(restored.rows)} tables, {rows} rows")
    applied = ", ".join(restored.migrations) or "none pending"
    print(f"applied {len(restored.migrations)} migration(s): {applied}")
    print(f"{restored.released} item(s) that were processing are pending again")


async def upgrade_command(settings: Settings, args: argparse.Namespace) -> None:
    """``scribe db upgrade``: carry the embedded data directory to the bundled major."""
    if settings.database_url is not None:
        raise ConfigurationError(
            "DATABASE_URL is set: scribe db upgrade is for the embedded server's data directory "
            "(move a server of your own with scribe backup and scribe restore, or pg_upgrade)"
        )
    done = await upgrade(settings.data_dir, args.old_bin)
    pgdata = settings.data_dir / "postgres"
    if done.kept is None:
        print(f"{pgdata} is PostgreSQL {done.new_major} already: nothing to upgrade")
        return
    checked = (
        f", {len(done.rows)} tables and {sum(done.rows.values())} rows checked" if done.rows else ""
    )
    print(
        f"upgraded {pgdata} from PostgreSQL {done.old_major} to {done.new_major}{checked}; "
        f"the old directory is kept as {done.kept} (remove it when you no longer need it)"
    )


DATA_COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], Coroutine[Any, Any, None]]] = {
    "backup": backup_command,
    "restore": restore_command,
    "db": upgrade_command,
}
