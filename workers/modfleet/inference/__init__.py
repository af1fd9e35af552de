"""Step 4 of the pipeline: a model's scores for a batch of texts, behind one interface."""

from modfleet.inference.base import Classifier, Verdict
from modfleet.inference.factory import create_classifier

__all__ = ["Classifier", "Verdict", "create_classifier"]
