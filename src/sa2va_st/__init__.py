"""sa2va-st: spatial-temporal grounding with one InternVL model, from raw data to a report."""

__version__ = "0.1.0"
