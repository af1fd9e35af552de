"""Step 5: the stream worker that runs the pipeline on micro-batches from Kafka."""

from modfleet.stream.infer import Retry
from modfleet.stream.pipeline import Pipeline

__all__ = ["Pipeline", "Retry"]
