"""Fuzz every route of /openapi.json with schemathesis, as a signed-in user with a profile.

Asserts, for generated valid and invalid inputs alike: no 5xx, documented status codes and
content types, and every response body matching its documented schema. Deterministic
(``derandomize``, no example database) and bounded: each operation gets as many cases per
generation mode as the input it reads can vary (``examples_for``), and the routes are fuzzed in
groups, one test each, so that parallel workers share them. Run it alone with ``pytest -m fuzz``;
``FUZZ_EXAMPLES=500`` for a deeper (much longer) run.
"""

from __future__ import annotations

import asyncio
import os
import traceback
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Err
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from scribe.settings import Settings
from tests.conftest import auth_headers, serve

# Cases per generation mode for an operation that reads a request body: the findings so far
# (undocumented 422 bodies, a 200 beside the documented 201, an undocumented header) all came
# from schema conformance and showed within the first cases, the same ones each run
# (derandomized). Operations reading only parameters (ids, limits, a header) get half as many,
# those reading nothing or refusing before they read (the Authorization header is always ours)
# a tenth: their cases differ only in headers the app ignores.
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
PARAMETER_EXAMPLES = max(1, FUZZ_EXAMPLES // 2)
NO_INPUT_EXAMPLES = max(1, FUZZ_EXAMPLES // 10)
# Under a minute per group at 50 on a 2-core box (the suite's per-test timeout is 60 s).
pytestmark = [pytest.mark.fuzz, pytest.mark.timeout(max(300, FUZZ_EXAMPLES * 6))]
# Never ends by design (a Server-Sent Events stream): covered by tests/acceptance/test_queue_api.
SKIPPED = {("GET", "/api/queue/stream")}
ADMIN = "operator@uni.edu"
ADMIN_PREFIX = "/api/admin"
# The signed-in user's routes, fuzzed by one test per group; "other" takes every route outside
# them (the admin routes too, which a non-admin is refused before they read a field).
USER_GROUPS = {
    "user": "/api/user",
    "email": "/api/email",
    "queue": "/api/queue",
    "templates": "/api/templates",
}
OTHER = "other"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def _fuzz(
    base_url: str, headers: dict[str, str], include: Callable[[str], bool], admin: bool
) -> list[str]:
    """Run every operation whose path ``include`` accepts, in both generation modes; return one
    line per failing one."""
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        if isinstance(result, Err):
            failures.append(f"invalid operation in /openapi.json: {result.err()}")
            continue
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        if not include(operation.path):
            continue
        refused = operation.path.startswith(ADMIN_PREFIX) and not admin
        examples = examples_for(operation, refused)
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            failure = _fuzz_operation(operation, mode, examples, base_url, headers, session)
            if failure:
                failures.append(f"{operation.method.upper()} {operation.path} [{mode}]: {failure}")
    return failures


def examples_for(operation: Any, refused: bool) -> int:
    """Cases per generation mode: by the input the operation reads from this caller."""
    definition = operation.definition.raw
    if refused:
        return NO_INPUT_EXAMPLES
    if "requestBody" in definition:
        return FUZZ_EXAMPLES
    if definition.get("parameters"):
        return PARAMETER_EXAMPLES
    return NO_INPUT_EXAMPLES


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    headers: dict[str, str],
    session: Any,
) -> str | None:
    @hypothesis_settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, session=session, timeout=20)
        case.validate_response(response, checks=CHECKS, headers=headers)

    try:
        check()
    except Unsatisfiable:
        if mode is GenerationMode.NEGATIVE:
            return None  # nothing to get wrong: no parameters and no body
        raise
    except (Exception, BaseExceptionGroup) as exc:  # schemathesis groups its failures
        return _summary(exc)
    return None


def _summary(exc: BaseException) -> str:
    """The first lines of each failure (schemathesis explains each at length, with a curl line)."""
    found = exc.exceptions if isinstance(exc, BaseExceptionGroup) else [exc]
    parts = []
    for failure in found:
        text = "".join(traceback.format_exception_only(failure))
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        curl = next((line for line in lines if line.startswith("curl ")), "")
        parts.append(" / ".join(lines[:3]) + (f" ({curl[:300]})" if curl else ""))
    return " || ".join(parts)


def _in_group(group: str) -> Callable[[str], bool]:
    """Whether a path belongs to a group of USER_GROUPS, or to none of them (OTHER)."""
    if group == OTHER:
        return lambda path: not any(path.startswith(prefix) for prefix in USER_GROUPS.values())
    return lambda path: path.startswith(USER_GROUPS[group])


def _in_admin(path: str) -> bool:
    return path.startswith(ADMIN_PREFIX)


@pytest.mark.parametrize("group", [*USER_GROUPS, OTHER])
async def test_every_route_survives_fuzzing(
    make_settings: Callable[..., Settings], group: str
) -> None:
    settings = make_settings(scribe_worker=False, scribe_rate_limit_per_minute=1_000_000)
    headers = auth_headers("fuzzer@uni.edu")
    async with serve(settings) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            init = await client.post("/api/user/init", json={"display_name": "F"}, headers=headers)
            assert init.status_code == 201, init.text
        failures = await asyncio.to_thread(_fuzz, url, headers, _in_group(group), False)
    assert not failures, "\n".join(failures)


async def test_every_admin_route_survives_fuzzing(make_settings: Callable[..., Settings]) -> None:
    """The admin routes as an admin (as anyone else they answer 403 before reading a field)."""
    settings = make_settings(
        scribe_worker=False, scribe_rate_limit_per_minute=1_000_000, admin_emails=[ADMIN]
    )
    headers = auth_headers(ADMIN)
    async with serve(settings) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            init = await client.post("/api/user/init", json={"display_name": "A"}, headers=headers)
            assert init.status_code == 201, init.text
            overview = await client.get("/api/admin/overview", headers=headers)
            assert overview.status_code == 200, overview.text  # really fuzzing as an admin
        failures = await asyncio.to_thread(_fuzz, url, headers, _in_admin, True)
    assert not failures, "\n".join(failures)
