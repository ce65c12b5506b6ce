"""What a running process needs besides its work: start-up steps begun ahead (``startup``, ``tls``),
tracked background tasks (``background``), systemd readiness and watchdog (``systemd``) and
tracing (``tracing``). Imports nothing of the package but the settings and its version."""
