"""What the encoders raise and what the decoders return when text cannot be read."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import Sa2vaError


class FormatError(Sa2vaError):
    """A target cannot be encoded (not finite, empty, out of range): a bug in the data, not the model."""


@dataclass(frozen=True)
class ParseFailure:
    """The failure marker of every decoder: model text that holds no valid answer.

    It is *falsy* (``if not answer:`` catches it) and never equal to a valid answer, so a
    metric can count it as IoU 0 and keep it in the denominator. ``None`` is not used as
    the failure marker because in video answers ``None`` already means "absent in this
    frame" (``<no_box>``).
    """

    reason: str
    text: str = field(repr=False)

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        shown = self.text if len(self.text) <= 60 else self.text[:57] + "..."
        return f"ParseFailure(reason={self.reason!r}, text={shown!r})"


def is_failure(value: object) -> bool:
    """True when a decoder's result is a `ParseFailure`."""
    return isinstance(value, ParseFailure)
