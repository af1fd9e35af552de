"""Measuring a policy pack and model on labelled posts: ``modfleet eval`` and the regression gate.

``data`` reads labelled files, ``scoring`` runs the worker's own normalise/classify/decide steps,
``metrics`` measures the result, ``report`` and ``plot`` write it out, ``gate`` checks a pack
against its golden set (``modfleet policy test``). Kept out of the worker's import path: it
pulls in scikit-learn, and matplotlib where installed.
"""
