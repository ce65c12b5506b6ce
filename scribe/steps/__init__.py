"""The email pipeline's steps: one module per step, each declaring what it reads, the clients it
needs and the output it adds; ``pipeline.STEPS`` is their one ordered list.

A step raises ``TransientStepError`` (retry later) or ``PermanentStepError`` (fail now) for its
own failures, lets the clients' ``UpstreamUnavailable`` / ``UpstreamRejected`` through, and never
touches the database or HTTP requests. The queue drives the steps in order and checkpoints the
state after each one.
"""

from __future__ import annotations

from scribe.steps.pipeline import STEP_NAMES, Pipeline, Step, StepFunction

__all__ = ["STEP_NAMES", "Pipeline", "Step", "StepFunction"]
