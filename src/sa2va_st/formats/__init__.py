"""Answer formats: how targets become answer text, and how model text becomes targets.

One concept per module:

- `tokens`   the special tokens, in upstream order (add them to the tokenizer as listed)
- `common`   `FormatError` (bad input to an encoder) and `ParseFailure` (what a decoder
             returns for text it cannot read; falsy, carries the reason)
- `boxes`    spatial answers: ``x1, y1, x2, y2`` in [0, 1] with three decimals,
             ``<box_sep>`` between boxes, ``<next>`` between video frames, ``<no_box>``
- `windows`  temporal answers: N feature bins over the whole video, the
             ``<frame_a1><frame_a2>-<frame_b1><frame_b2>`` answer, and the uniform
             (target-independent) choice of which feature rows the model sees

Encoders raise `FormatError` on invalid targets (that is a bug in the data).
Decoders never raise on model text: they return a value or a `ParseFailure`; they
tolerate whitespace and stray text around one valid answer but never guess.

Importing this package is cheap (numpy only, no torch).
"""

from .common import FormatError, ParseFailure, is_failure
from .tokens import (
    BOX_SEP_TOKEN,
    FRAME_TOKENS,
    NEXT_TOKEN,
    NO_BOX_TOKEN,
    SINGLE_IMG_TOKEN,
    SPATIAL_TOKEN,
    SPECIAL_TOKENS,
    TEMPORAL_TOKEN,
)

__all__ = [
    "BOX_SEP_TOKEN",
    "FRAME_TOKENS",
    "FormatError",
    "NEXT_TOKEN",
    "NO_BOX_TOKEN",
    "ParseFailure",
    "SINGLE_IMG_TOKEN",
    "SPATIAL_TOKEN",
    "SPECIAL_TOKENS",
    "TEMPORAL_TOKEN",
    "is_failure",
]
