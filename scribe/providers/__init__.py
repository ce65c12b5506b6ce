"""Provider accounts: one record per account (``anthropic:claude-haiku``, ``exa``) holding its
token buckets, the limits learned from its rate-limit headers, and its one state machine (up,
rate-limited, down, paused). See docs/providers.md.

- ``account``: the record and its state machine (``Account``, ``Status``);
- ``accounts``: every account of the process; the queue's ``ProviderGate``;
- ``calls``: sending one request through its account (``send_paced``, ``Refusal``);
- ``buckets``, ``limits``: token buckets and the rate-limit headers;
- ``sharing``: what processes share through the database (shares, states, resumes), by the
  functions the composition root passes in; this package imports nothing of ``scribe.db``.
"""
