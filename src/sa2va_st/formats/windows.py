"""Temporal answers: N feature bins over the whole video, and the frame-token answer.

The definitions (everything else follows them):

1. **Bins.** A video of duration ``d`` seconds is cut into ``n`` equal bins (``n = 100``
   by default). Bin ``j`` (``0 <= j < n``) is the half-open interval
   ``[j * d / n, (j + 1) * d / n)`` seconds (the last bin includes ``d``). The model
   sees exactly one CLIP feature per bin, in order, so *feature index j stands for bin j*.
   The bins depend on the video only, never on the target window (upstream picked
   20–40 features *inside* the target window during training: that leaks the label
   and cannot be done at test time).

2. **Which feature row a bin shows** (`sample_positions`). The feature file of a video
   holds ``T`` rows, row ``i`` being the frame at time ``i / fps``
   (`sa2va_st.features.timing`, ``T = ceil(d * fps)``). Measured in rows, bin ``j`` is
   ``[j * T / n, (j + 1) * T / n)`` and *owns* the rows ``i`` inside it:
   ``ceil(j * T / n) <= i < ceil((j + 1) * T / n)`` (computed in integers, no float
   rounding). Evaluation (``rng=None``) takes the row nearest to the bin centre
   ``(j + 0.5) * T / n``, a tie going to the earlier row (as in the feature stage).
   Training (``rng`` given) takes one of the bin's own rows uniformly at random: jitter
   that never leaves the bin, so the answer does not change. A bin that owns no row
   (only when ``T < n``) takes its evaluation row, so rows repeat; when ``T >= n`` the
   ``n`` rows are distinct. Positions are always non-decreasing. Row times and bin
   times agree to within ``1 / fps`` (``T / fps - d < 1 / fps``).

3. **Window → indices** (`window_to_indices`): the bins the window overlaps.
   ``a = floor(start * n / d)``, ``b = ceil(end * n / d) - 1``, each with a 1e-9 bin
   slack so that a time on a bin edge (up to float noise) counts as that edge; then
   clamped to ``[0, n - 1]`` and ``b = max(a, b)`` (a zero-length window on an edge
   keeps the bin that starts there). Times outside ``[0, d]`` are clipped first.

4. **Indices → window** (`indices_to_window`): the union of bins ``a..b``:
   ``(a * d / n, min(d, (b + 1) * d / n))``. Hence seconds → indices → seconds gives a
   window that contains the original and exceeds it by at most ``d / n`` at each end,
   and indices → seconds → indices is the identity.

5. **Answer text** (`encode_window_tokens`): ``<frame_A1><frame_A2>-<frame_B1><frame_B2>``,
   the two decimal digits of ``a`` and of ``b`` (``7`` → ``<frame_0><frame_7>``); so
   ``n <= 100``. `decode_window_tokens` accepts whitespace between the tokens and stray
   text without ``<frame_`` tokens around one answer; anything else — no answer, two
   answers, ``a > b``, ``b >= n`` — is a `ParseFailure`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .common import FormatError, ParseFailure
from .tokens import FRAME_TOKENS

DEFAULT_NUM_BINS = 100
MAX_TOKEN_BINS = 100  # two decimal digits
_EDGE_SLACK = 1e-9  # in bin units

_DIGIT = r"<frame_([0-9])>"
_WINDOW_RE = re.compile(rf"{_DIGIT}\s*+{_DIGIT}\s*+-\s*+{_DIGIT}\s*+{_DIGIT}")


def _check_n(n: object, *, limit: int | None = None) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise FormatError(f"the number of feature bins must be an integer >= 1, got {n!r}")
    if limit is not None and n > limit:
        raise FormatError(
            f"{n} feature bins cannot be written with two-digit frame tokens (at most {limit})",
            fix=f"use n <= {limit}",
        )
    return int(n)


def _check_duration(duration_s: float) -> float:
    d = float(duration_s)
    if not (math.isfinite(d) and d > 0):
        raise FormatError(
            f"a video duration must be a finite number > 0, got {duration_s!r}",
            fix="drop videos without a readable duration",
        )
    return d


def _check_index(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise FormatError(f"{name} must be an integer feature index, got {value!r}")
    return int(value)


def bin_edges(duration_s: float, n: int = DEFAULT_NUM_BINS) -> np.ndarray:
    """The ``n + 1`` bin edges in seconds: ``j * d / n`` (the last one is exactly ``d``)."""
    d, n = _check_duration(duration_s), _check_n(n)
    edges = np.arange(n + 1, dtype=np.float64) * d / n  # (n+1,)
    edges[-1] = d
    return edges


def bin_centres(duration_s: float, n: int = DEFAULT_NUM_BINS) -> np.ndarray:
    """The time each feature index stands for at evaluation: ``(j + 0.5) * d / n``, shape (n,)."""
    d, n = _check_duration(duration_s), _check_n(n)
    return (np.arange(n, dtype=np.float64) + 0.5) * d / n


def window_to_indices(start_s: float, end_s: float, duration_s: float, n: int = DEFAULT_NUM_BINS) -> tuple[int, int]:
    """Rule 3: the first and last bin the window ``[start_s, end_s]`` overlaps, ``0 <= a <= b <= n-1``.

    Raises `FormatError` for non-finite times, ``start_s > end_s`` or a bad duration / n
    (the manifest stage clips and orders raw windows before this is called).
    """
    d, n = _check_duration(duration_s), _check_n(n)
    s, e = float(start_s), float(end_s)
    if not (math.isfinite(s) and math.isfinite(e)):
        raise FormatError(f"a window needs finite times, got [{start_s!r}, {end_s!r}]")
    if s > e:
        raise FormatError(
            f"a window starts after it ends: [{s}, {e}]", fix="order the window when building the manifest"
        )
    s, e = min(max(s, 0.0), d), min(max(e, 0.0), d)
    a = math.floor(s * n / d + _EDGE_SLACK)
    b = math.ceil(e * n / d - _EDGE_SLACK) - 1
    a = min(max(a, 0), n - 1)
    b = min(max(b, a), n - 1)
    return a, b


def indices_to_window(a: int, b: int, duration_s: float, n: int = DEFAULT_NUM_BINS) -> tuple[float, float]:
    """Rule 4: bins ``a..b`` → seconds ``(a * d / n, min(d, (b + 1) * d / n))``."""
    d, n = _check_duration(duration_s), _check_n(n)
    a, b = _check_index(a, "a"), _check_index(b, "b")
    if not 0 <= a <= b <= n - 1:
        raise FormatError(f"feature indices must satisfy 0 <= a <= b <= {n - 1}, got a={a}, b={b}")
    return a * d / n, min(d, (b + 1) * d / n)


def encode_window_tokens(a: int, b: int, n: int = DEFAULT_NUM_BINS) -> str:
    """Rule 5: ``<frame_A1><frame_A2>-<frame_B1><frame_B2>`` for ``0 <= a <= b <= n - 1 <= 99``."""
    n = _check_n(n, limit=MAX_TOKEN_BINS)
    a, b = _check_index(a, "a"), _check_index(b, "b")
    if not 0 <= a <= b <= n - 1:
        raise FormatError(f"feature indices must satisfy 0 <= a <= b <= {n - 1}, got a={a}, b={b}")
    return f"{FRAME_TOKENS[a // 10]}{FRAME_TOKENS[a % 10]}-{FRAME_TOKENS[b // 10]}{FRAME_TOKENS[b % 10]}"


def decode_window_tokens(text: str, n: int = DEFAULT_NUM_BINS) -> tuple[int, int] | ParseFailure:
    """Rule 5, backwards: the answer's ``(a, b)``, or a `ParseFailure`. Never raises on text."""
    n = _check_n(n, limit=MAX_TOKEN_BINS)
    if not isinstance(text, str):
        return ParseFailure(f"expected text, got {type(text).__name__}", repr(text))
    matches = list(_WINDOW_RE.finditer(text))
    if not matches:
        return ParseFailure("no <frame_d><frame_d>-<frame_d><frame_d> answer in the text", text)
    if len(matches) > 1:
        return ParseFailure(f"{len(matches)} window answers in the text: ambiguous", text)
    match = matches[0]
    stray = text[: match.start()] + " " + text[match.end() :]
    if "<frame_" in stray:
        return ParseFailure("stray <frame_ token outside the window answer: ambiguous", text)
    d = [int(g) for g in match.groups()]
    a, b = 10 * d[0] + d[1], 10 * d[2] + d[3]
    if a > b:
        return ParseFailure(f"window starts after it ends: {a} > {b}", text)
    if b >= n:
        return ParseFailure(f"feature index {b} out of range for {n} features", text)
    return a, b


def sample_positions(
    num_available: int, n: int = DEFAULT_NUM_BINS, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Rule 2: which of ``num_available`` feature rows the model sees as features ``0..n-1``.

    Uniform over the whole video and independent of any target. ``rng`` given
    (training): one of each bin's own rows, uniformly at random. ``rng=None`` (evaluation):
    the row nearest each bin centre, deterministic. Returns ``(n,)`` int64 row indices, non-decreasing, in ``[0, num_available)``.
    """
    if isinstance(num_available, bool) or not isinstance(num_available, (int, np.integer)) or num_available < 1:
        raise FormatError(
            f"a video needs at least one feature row, got {num_available!r}",
            fix="re-extract the video's CLIP features; the index table records failed videos",
        )
    n = _check_n(n)
    t = int(num_available)
    j = np.arange(n, dtype=np.int64)  # (n,)
    # nearest row to the centre (j + 0.5) t / n, ties to the earlier: ceil(((2j + 1) t - n) / (2n))
    centre = -((n - (2 * j + 1) * t) // (2 * n))
    centre = np.clip(centre, 0, t - 1)
    if rng is None:
        rows = centre
    else:
        lo = -((-j * t) // n)  # ceil(j t / n): first row the bin owns
        hi = -((-(j + 1) * t) // n)  # ceil((j + 1) t / n): first row of the next bin
        owns = hi > lo
        drawn = rng.integers(lo, np.where(owns, hi, lo + 1))  # (n,) uniform over each bin's own rows
        rows = np.where(owns, drawn, centre)
    return np.maximum.accumulate(np.clip(rows, 0, t - 1)).astype(np.int64)
