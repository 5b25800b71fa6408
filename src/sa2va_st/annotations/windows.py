"""Time windows in seconds, as written and ordered.

The raw files hold windows with start > end and windows that end after the video. Readers keep
the window as written and an ordered copy (start <= end), and count the reorderings. Clipping to
the video's duration needs the duration, which only the video knows: the manifests stage (which
probes the videos) clips, and counts what it clipped. special_jsons hold ordered, unclipped
windows in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import rounded


@dataclass(frozen=True)
class Window:
    written: tuple[float, float]  # as in the file
    ordered: tuple[float, float]  # start <= end

    @property
    def reordered(self) -> bool:
        return self.written != self.ordered

    @property
    def zero_length(self) -> bool:
        return self.ordered[0] == self.ordered[1]


def window(start: float, end: float) -> Window:
    written = (rounded(start), rounded(end))
    return Window(written, (min(written), max(written)))


def clip_window(ordered: tuple[float, float], duration: float) -> tuple[float, float]:
    """An ordered window clipped to [0, duration] (for the stage that knows durations)."""
    start, end = ordered
    return (rounded(min(max(start, 0.0), duration)), rounded(min(max(end, 0.0), duration)))
