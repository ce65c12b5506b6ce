"""The app's small ASGI middlewares, one per module, stacked by ``scribe.app``. Those that are one
part of a larger concern live beside it: ``scribe.http.metrics``, ``scribe.http.rate_limit`` and
``scribe.http.guard`` (the per-peer share of proxied clients)."""
