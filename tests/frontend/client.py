"""The frontend's API client, as the refusal tests drive it.

``RealClient`` runs the frontend's own TypeScript (``lib/api/client.ts``, ``errors.ts``,
``retry.ts``, ``index.ts``, ``admin.ts``, ``schemas.ts``) under node, over real HTTP to the served
app: set ``SCRIBE_FRONTEND_DIR`` to a checkout of the frontend whose ``node_modules`` holds zod and
typescript (``npm ci`` there does it). ``ModelClient`` is the fixture used without one: what
those files do with an answer, restated from the frontend at ``FRONTEND_COMMIT`` (error class and
message by status, which classes ``withRetry`` re-sends, the zod address check of the admin user
list), sending the same requests with httpx. With both available the tests run each case through
both, so the model is checked against the real client.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

FRONTEND_COMMIT = "01eac0266772fa7fec49ef5d41f405f9ed8ffa5f"  # Mishra-Manit/scribe-frontend
RUNNER = Path(__file__).with_name("run_client.cjs")
NODE_TIMEOUT_SECONDS = 50.0  # the client's own retries wait about 1 s and 2 s


@dataclass(frozen=True, slots=True)
class Failure:
    """The error the client throws: its class, ``message`` (what most pages show), the status
    it carries and whether its ``withRetry`` would send the request again."""

    name: str
    message: str
    status: int
    retryable: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call of a client function came to: the requests it sent and how it ended."""

    fetches: int
    failure: Failure | None


@dataclass(frozen=True, slots=True)
class Call:
    """One call of a client function (``lib/api``), and the request it sends."""

    function: str  # e.g. "templateAPI.generateTemplate"
    args: tuple[Any, ...]
    method: str
    path: str
    body: Any = None
    attempts: int = 3  # its withRetry's maxAttempts (1: retry: false)


def generate_template(pdf_url: str, instructions: str) -> Call:
    """``templateAPI.generateTemplate``: ``retry: false``."""
    body = {"pdf_url": pdf_url, "user_instructions": instructions}
    args = (pdf_url, instructions)
    return Call("templateAPI.generateTemplate", args, "POST", "/api/templates/", body, 1)


def submit_batch(names: list[str], interest: str, template: str) -> Call:
    """``queueAPI.submitBatch``: ``retry: {maxAttempts: 2}``."""
    items = [{"recipient_name": name, "recipient_interest": interest} for name in names]
    body = {"items": items, "email_template": template}
    return Call("queueAPI.submitBatch", (items, template), "POST", "/api/queue/batch", body, 2)


def init_user(display_name: str) -> Call:
    """``userAPI.initUser``: the client's default retry (3 attempts)."""
    body = {"display_name": display_name}
    return Call("userAPI.initUser", (display_name,), "POST", "/api/user/init", body)


def cancel_item(item_id: str) -> Call:
    """``queueAPI.cancelItem``: the default retry."""
    return Call("queueAPI.cancelItem", (item_id,), "DELETE", f"/api/queue/{item_id}")


def admin_users() -> Call:
    """``adminApi.getUsers`` (no ``limit``), its answer checked by ``AdminUserSchema``."""
    return Call("adminApi.getUsers", (), "GET", "/api/admin/users")


class FrontendClient(Protocol):
    """Sends a call as the frontend's client does, with the caller's token."""

    name: str

    async def send(self, call: Call, token: str) -> Outcome:
        """The outcome of one call of the client function."""
        ...


# --- the model (fixture) ---

RATE_LIMIT_MESSAGE = "Rate limit exceeded (429)"  # API_ERRORS.RATE_LIMIT.dev
SCHEMA_MISMATCH = "API response validation failed - schema mismatch"  # + the zod issues
# zod 4's z.string().email(), which AdminUserSchema and UserProfileSchema apply to `email`
ZOD_EMAIL = re.compile(
    r"^(?!\.)(?!.*\.\.)([A-Za-z0-9_'+\-\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\-]*\.)+[A-Za-z]{2,}$"
)


def failure_of(response: httpx.Response) -> Failure:
    """The error ``ApiClient.handleResponse`` throws for a non-2xx answer."""
    status = response.status_code
    if status == 429:
        return Failure("RateLimitError", RATE_LIMIT_MESSAGE, 429, True)
    message = _message(response)
    if status in (401, 403):
        return Failure("AuthenticationError", message, status, False)
    if status == 400:
        return Failure("ValidationError", message, 400, False)
    if status >= 500:
        return Failure("ServerError", message, status, True)
    return Failure("ApiError", message, status, False)


def _message(response: httpx.Response) -> str:
    """``errorData.message || errorData.detail``, an object JSON.stringify'd."""
    try:
        data = response.json()
    except ValueError:
        data = {}
    message = (data.get("message") or data.get("detail")) if isinstance(data, dict) else None
    if message is not None and not isinstance(message, str):
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False)
    return message or ""


def schema_failure(call: Call, response: httpx.Response) -> Failure | None:
    """The admin user list's schema check (the only answer the refusal tests parse)."""
    if call.function != "adminApi.getUsers":
        return None
    bad = [row["email"] for row in response.json() if not ZOD_EMAIL.match(row["email"])]
    if not bad:
        return None
    return Failure(
        "ValidationError", "API response validation failed - schema mismatch", 400, False
    )


class ModelClient:
    """The fixture: the frontend client's mapping restated, sending with httpx."""

    name = "model"

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def send(self, call: Call, token: str) -> Outcome:
        """Send, re-sending as ``withRetry`` does (no waits: they change nothing here)."""
        headers = {"Authorization": f"Bearer {token}"}
        for attempt in range(1, call.attempts + 1):
            response = await self._http.request(
                call.method, call.path, json=call.body, headers=headers
            )
            if response.is_success:
                return Outcome(attempt, schema_failure(call, response))
            failure = failure_of(response)
            if attempt == call.attempts or not failure.retryable:
                return Outcome(attempt, failure)
        raise AssertionError("unreachable")


# --- the real client ---


def frontend_dir() -> Path | None:
    """The frontend checkout to run, when there is one and node can run it."""
    configured = os.environ.get("SCRIBE_FRONTEND_DIR")
    if not configured or shutil.which("node") is None:
        return None
    path = Path(configured)
    needed = [
        path / "lib/api/client.ts",
        path / "node_modules/zod",
        path / "node_modules/typescript",
    ]
    return path if all(item.exists() for item in needed) else None


class RealClient:
    """The frontend's own client under node (``run_client.cjs``), against ``base_url``."""

    name = "real"

    def __init__(self, frontend: Path, base_url: str) -> None:
        self._frontend = frontend
        self._base_url = base_url

    async def send(self, call: Call, token: str) -> Outcome:
        """Run the client function once; its own retries happen inside it."""
        process = await asyncio.create_subprocess_exec(
            "node",
            str(RUNNER),
            str(self._frontend),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "NEXT_PUBLIC_API_BASE_URL": self._base_url},
        )
        request = json.dumps({"token": token, "function": call.function, "args": call.args})
        out, err = await asyncio.wait_for(
            process.communicate(request.encode()), NODE_TIMEOUT_SECONDS
        )
        assert process.returncode == 0, err.decode()[-2000:]
        result = json.loads(out.decode().strip().splitlines()[-1])
        error = result["error"]
        failure = None
        if error is not None:
            message = error["message"]
            if message.startswith(SCHEMA_MISMATCH):
                message = SCHEMA_MISMATCH
            failure = Failure(error["name"], message, error["status"], error["retryable"])
        return Outcome(result["fetches"], failure)
