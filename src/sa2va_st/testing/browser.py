"""Headless Chromium for tests: render an HTML page to a PNG and check that the PNG shows something.

For tests only (product modules never import `sa2va_st.testing`). The pipeline's HTML report
(`results/report/index.html`) and Snakemake's own `snakemake --report` page are checked by opening
them in a real browser, taking a screenshot and looking at its pixels:

    exe = ensure_chromium()                       # find it, or apt-get install chromium (root only)
    screenshot(Path("index.html"), Path("shot.png"))
    assert not is_blank(Path("shot.png"))
    big = [n for n in distinct_colours(Path("shot.png")).values() if n >= 2000]
    assert len(big) >= 2  # coloured patches of a plot are visible (icons and links are far smaller)

Colour helpers work on the PNG alone (PIL): `blank_fraction` is the share of pixels equal to the most
common colour (the background); `distinct_colours` counts the saturated colours (not white, black
or grey, so not background or text) that cover at least a few pixels, which is what a plot adds.
Pages also have small coloured bits (icons, links: Snakemake's report landing page alone gives ~9
colours of under 400 pixels each at 1280x900), so to show that a plot is visible, count large patches.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from PIL import Image

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", "headless_shell")
APT_PACKAGES = ("chromium", "fonts-dejavu-core")  # fonts: without any, text renders as nothing (or boxes)
APT_TIMEOUT_S = 600
SCREENSHOT_TIMEOUT_S = 120
DEFAULT_WAIT_MS = 5000  # virtual time: JS apps (Snakemake's React report) finish before the capture


def find_chromium() -> str | None:
    """The path of a Chromium/Chrome executable on PATH, or None."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _has_fonts() -> bool:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        return Path("/usr/share/fonts").is_dir() and any(Path("/usr/share/fonts").rglob("*.ttf"))
    try:
        out = subprocess.run([fc_list], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return bool(out.strip())


def _apt_install(packages: tuple[str, ...]) -> str:
    """Run apt-get update + install quietly; return a one-line account of what happened."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = (
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
    )
    for cmd in steps:
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=APT_TIMEOUT_S, env=env)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd)}` timed out after {APT_TIMEOUT_S}s"
        except OSError as exc:
            return f"`{' '.join(cmd)}` could not run: {exc}"
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip()[-800:]
            return f"`{' '.join(cmd)}` failed (exit {proc.returncode}): {tail}"
    return f"`apt-get install {' '.join(packages)}` succeeded"


def _can_apt() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def ensure_chromium() -> str:
    """A Chromium executable: found on PATH, or installed with apt-get (Debian `chromium`) when root.

    Also installs `fonts-dejavu-core` when no font is known to fontconfig, so text renders.
    Raises RuntimeError saying what was tried when no browser can be had.
    """
    exe = find_chromium()
    if exe is not None:
        if not _has_fonts() and _can_apt():
            _apt_install(("fonts-dejavu-core",))  # best effort: a screenshot without text still works
        return exe
    tried = [f"looked on PATH for {', '.join(CHROMIUM_NAMES)}"]
    if not _can_apt():
        reason = "not running as root" if shutil.which("apt-get") else "apt-get not found"
        tried.append(f"did not try apt-get ({reason})")
    else:
        tried.append(_apt_install(APT_PACKAGES))
        exe = find_chromium()
        if exe is not None:
            return exe
        tried.append("still no browser on PATH afterwards")
    raise RuntimeError("no headless Chromium available: " + "; ".join(tried))


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def screenshot(
    html: Path,
    png: Path,
    *,
    width: int = 1280,
    height: int = 2000,
    wait_ms: int = DEFAULT_WAIT_MS,
    timeout_s: float = SCREENSHOT_TIMEOUT_S,
    chromium: str | None = None,
) -> Path:
    """Render `html` (a local file) in headless Chromium at width x height and write the viewport to `png`.

    `wait_ms` is Chromium's --virtual-time-budget: timers and scripts run (fast-forwarded) for that much
    virtual time before the capture, so pages rendered by JavaScript are complete. Returns `png`.
    Raises RuntimeError with the tail of Chromium's stderr when no PNG is written.
    """
    exe = chromium or ensure_chromium()
    html = Path(html).resolve()
    png = Path(png).resolve()
    if not html.is_file():
        raise FileNotFoundError(html)
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        cmd = [
            exe,
            "--headless=new",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--mute-audio",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
        ]
        if wait_ms > 0:  # (a budget of 0 makes Chromium wait forever on some pages)
            cmd.append(f"--virtual-time-budget={int(wait_ms)}")
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--no-sandbox")
        cmd.append(html.as_uri())
        # own process group, so that on a timeout the browser's helper processes are ended too
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=profile, start_new_session=True
        )
        try:
            _, stderr = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired as exc:
            _kill_group(proc.pid)
            _, stderr = proc.communicate()
            raise RuntimeError(
                f"chromium timed out after {timeout_s}s rendering {html}; stderr tail:\n{stderr[-2000:]}"
            ) from exc
        finally:
            _kill_group(proc.pid)  # helpers (crashpad, zygote) that outlived the browser
    if not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(
            f"chromium wrote no screenshot for {html} (exit {proc.returncode}); stderr tail:\n{stderr[-2000:]}"
        )
    return png


def _colour_counts(png: Path) -> Counter[tuple[int, int, int]]:
    """How many pixels have each RGB colour."""
    with Image.open(png) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=rgb.width * rgb.height)
    return Counter({colour: n for n, colour in colours})


def blank_fraction(png: Path) -> float:
    """The fraction of pixels equal to the most common colour (1.0 means a single-colour image)."""
    counts = _colour_counts(png)
    return counts.most_common(1)[0][1] / counts.total()


def is_blank(png: Path, threshold: float = 0.995) -> bool:
    """True when at least `threshold` of the pixels are the most common colour (nothing rendered)."""
    return blank_fraction(png) >= threshold


def distinct_colours(
    png: Path, *, min_saturation: int = 60, min_pixels: int = 20, quantise: int = 32
) -> dict[tuple[int, int, int], int]:
    """Saturated colours in the image and their pixel counts: what a plot adds beyond background and text.

    A pixel counts when max(R,G,B) - min(R,G,B) >= `min_saturation` (so white, black and greys, i.e.
    background, text and anti-aliasing of text, are left out). Colours are rounded to buckets of
    `quantise` per channel, so the shades at a line's edge fall in one bucket, and only buckets with
    at least `min_pixels` pixels are kept. Example: an SVG with red, green and blue bars gives 3 entries.
    """
    counts: Counter[tuple[int, int, int]] = Counter()
    for (r, g, b), n in _colour_counts(png).items():
        if max(r, g, b) - min(r, g, b) >= min_saturation:
            counts[(r // quantise * quantise, g // quantise * quantise, b // quantise * quantise)] += n
    return {colour: n for colour, n in counts.most_common() if n >= min_pixels}
