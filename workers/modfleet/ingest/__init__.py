"""Step 1 of the pipeline: a Kafka record becomes a valid Post or a rejection with its reason."""

from modfleet.ingest.decode import Post, Record, Rejection, decode

__all__ = ["Post", "Record", "Rejection", "decode"]
