"""The HTTP layer under the API: who is calling (``auth``), what a connection may do (``guard``,
``rate_limit``), what is measured (``metrics``) and logged (``request_ids``, ``log_throttle``),
and the middlewares ``scribe.app`` stacks (``middleware``). Knows no route and no job."""
