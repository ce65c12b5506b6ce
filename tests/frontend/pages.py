"""What each page of the frontend shows for a failed call, restated from its handlers at
``FRONTEND_COMMIT`` (React components cannot run here), and React Query's own re-send.

- The template page (``app/dashboard/template/page.tsx``, ``generateMutation.onError``): its
  own text for a ``RateLimitError``, the error's ``message`` otherwise.
- The generate page (``hooks/useQueueManager.ts``, ``submitMutation.onError``): one fixed toast,
  whatever the error; the cancel mutation likewise (the app renders no cancel control).
- Account set-up (``context/AuthContextProvider.tsx``, around ``initUser``): a fixed text for
  401/403, the error's ``message`` otherwise, in the "Account Setup Issue" alert and a toast.
- The admin page (``app/admin/view/page.tsx``, ``loadData``): "Access Denied" for an
  ``AuthenticationError``, the error's ``message`` otherwise.
"""

from __future__ import annotations

from tests.frontend.client import Call, FrontendClient, Outcome

MAX_TEMPLATES = 5  # the template page's own constant
INIT_FORBIDDEN = "Failed to initialize your account. Please try logging out and back in."
INIT_FAILED = "Failed to initialize your account. Please contact support if this persists."
QUEUE_FAILED = "Failed to add items to queue"
CANCEL_FAILED = "Failed to cancel queue item"
ACCESS_DENIED = "Access Denied"
# QueryProvider.tsx: `mutations: { retry: 1 }` and no page overrides it, so a failed mutation is
# sent once more (about a second later) before onError runs with the last error.
MUTATION_SENDS = 2


async def mutate(client: FrontendClient, call: Call, token: str) -> Outcome:
    """A page's ``useMutation`` calling the client function: re-sent once after a failure."""
    fetches = 0
    for _ in range(MUTATION_SENDS):
        outcome = await client.send(call, token)
        fetches += outcome.fetches
        if outcome.failure is None:
            break
    return Outcome(fetches, outcome.failure)


def template_page(outcome: Outcome) -> str:
    """The template page's error line."""
    assert outcome.failure is not None
    if outcome.failure.name == "RateLimitError":
        return f"Template limit reached ({MAX_TEMPLATES} maximum)."
    return outcome.failure.message


def generate_page(outcome: Outcome) -> str:
    """The generate page's toast after a failed batch."""
    assert outcome.failure is not None
    return QUEUE_FAILED


def cancel_toast(outcome: Outcome) -> str:
    """The queue hook's toast after a failed cancel."""
    assert outcome.failure is not None
    return CANCEL_FAILED


def account_setup(outcome: Outcome) -> str:
    """The "Account Setup Issue" alert after a failed profile creation."""
    assert outcome.failure is not None
    if outcome.failure.status in (401, 403):
        return INIT_FORBIDDEN
    return outcome.failure.message or INIT_FAILED


def admin_page(outcome: Outcome) -> str:
    """What the admin page shows: the page itself, "Access Denied", or the error."""
    if outcome.failure is None:
        return "the page"
    if outcome.failure.name == "AuthenticationError":
        return ACCESS_DENIED
    return outcome.failure.message
