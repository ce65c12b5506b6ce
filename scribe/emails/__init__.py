"""The email domain's side of the queue: the job handler that runs the pipeline for an item."""
