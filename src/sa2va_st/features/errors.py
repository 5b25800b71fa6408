"""The one error type of the features stage."""

from __future__ import annotations

from ..errors import Sa2vaError


class FeatureError(Sa2vaError):
    """A video cannot be turned into features, a model cannot be loaded, or a shard failed too often."""
