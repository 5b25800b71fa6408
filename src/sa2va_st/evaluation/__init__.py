"""Evaluation: predictions of a model on the benchmark splits, and the scores computed from them.

`metrics` never runs a model, so every score re-runs from saved predictions.
"""
