"""The embedded classifier trained by the project: hashed n-gram features, a head per category.

``modfleet model train`` builds it (:mod:`modfleet.model.build`); the inference backend loads it
with :func:`modfleet.model.artifact.load`.
"""
