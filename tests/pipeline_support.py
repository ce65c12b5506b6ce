"""Running the pipeline straight through, without the queue (its checkpoints, leases, retries):
the pipeline tests read what the steps produce from the last state."""

from __future__ import annotations

from scribe.steps import Pipeline
from scribe.steps.data import PipelineData


async def run_pipeline(pipeline: Pipeline, data: PipelineData) -> PipelineData:
    """Run every step in order and return the last state."""
    for step in pipeline:
        data = await step.run(data)
    return data
