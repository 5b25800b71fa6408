"""The headless-Chromium screenshot helpers (`sa2va_st.testing.browser`) on tiny self-contained pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from sa2va_st.testing.browser import blank_fraction, distinct_colours, ensure_chromium, is_blank, screenshot

PLOT_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>plot</title>
<style>body { font-family: sans-serif; background: #fff; color: #222; margin: 20px; }
table { border-collapse: collapse; } td, th { border: 1px solid #888; padding: 4px 10px; }</style>
</head><body>
<h1>Results</h1>
<table><tr><th>split</th><th>mIoU</th></tr><tr><td>val</td><td>0.42</td></tr><tr><td>test</td><td>0.40</td></tr></table>
<svg xmlns="http://www.w3.org/2000/svg" width="400" height="220" viewBox="0 0 400 220">
  <rect x="20" y="100" width="60" height="100" fill="#d62728"/>
  <rect x="100" y="60" width="60" height="140" fill="#2ca02c"/>
  <rect x="180" y="20" width="60" height="180" fill="#1f77b4"/>
  <polyline points="20,180 120,120 220,150 320,40 380,60" fill="none" stroke="#ff7f0e" stroke-width="6"/>
</svg>
</body></html>
"""

BLANK_PAGE = '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="background:#fff"></body></html>\n'


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        return ensure_chromium()
    except RuntimeError as exc:
        pytest.skip(f"headless Chromium unavailable: {exc}")


def test_screenshot_shows_table_and_coloured_plot(tmp_path: Path, chromium: str) -> None:
    html = tmp_path / "page.html"
    html.write_text(PLOT_PAGE, encoding="utf-8")
    png = screenshot(html, tmp_path / "page.png", width=800, height=600, wait_ms=500, chromium=chromium)

    assert png.is_file()
    assert not is_blank(png)
    assert blank_fraction(png) < 0.95
    colours = distinct_colours(png)
    # red, green and blue bars and the orange line: four saturated colours, each a large patch
    assert len(colours) >= 4, colours
    assert sum(1 for n in colours.values() if n >= 2000) >= 3, colours


def test_blank_page_is_blank(tmp_path: Path, chromium: str) -> None:
    html = tmp_path / "blank.html"
    html.write_text(BLANK_PAGE, encoding="utf-8")
    png = screenshot(html, tmp_path / "blank.png", width=400, height=300, wait_ms=100, chromium=chromium)

    assert is_blank(png)
    assert blank_fraction(png) == 1.0
    assert distinct_colours(png) == {}
