"""The special tokens of the answers, in upstream order (``sa2va_4b_shared``'s ``special_tokens``).

Add them to the tokenizer in exactly this order (``tokenizer.add_tokens(list(SPECIAL_TOKENS),
special_tokens=True)``) so that token ids match upstream checkpoints.
"""

from __future__ import annotations

SPATIAL_TOKEN = "<SPATIAL>"
TEMPORAL_TOKEN = "<TEMPORAL>"
BOX_SEP_TOKEN = "<box_sep>"
NO_BOX_TOKEN = "<no_box>"
NEXT_TOKEN = "<next>"
SINGLE_IMG_TOKEN = "<single_img>"
FRAME_TOKENS: tuple[str, ...] = tuple(f"<frame_{d}>" for d in range(10))

SPECIAL_TOKENS: tuple[str, ...] = (
    # task
    SPATIAL_TOKEN,
    TEMPORAL_TOKEN,
    # spatial grounding
    BOX_SEP_TOKEN,
    NO_BOX_TOKEN,
    NEXT_TOKEN,
    SINGLE_IMG_TOKEN,
    # temporal grounding: the ten digits of a two-digit feature index
    *FRAME_TOKENS,
)
