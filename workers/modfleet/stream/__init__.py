"""Step 5: the stream worker that runs the pipeline on micro-batches from Kafka."""

from modfleet.stream.pipeline import Pipeline, Retry

__all__ = ["Pipeline", "Retry"]
