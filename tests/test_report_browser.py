"""The report renders in a real browser: every embedded image decodes, the page is not blank.

Headless Chromium loads a copy of the report with a probe script appended; on ``load`` the probe
writes into the DOM how many <img> elements decoded to a non-zero natural size, and
``--dump-dom`` returns that DOM. A screenshot of the report must show far more coloured
pixels (plots, heatmaps, overlays) than one of the same page with its images emptied.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_report import N_FIGURES, synthetic_results

from iadbench.report import build_report

PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const ok = images.filter((i) => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0);
  const tables = document.querySelectorAll("table").length;
  document.body.setAttribute("data-probe", `${ok.length}/${images.length}/${tables}`);
});
</script>"""


def _browser() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no Chromium/Chrome binary on PATH (chromium, chromium-browser, google-chrome)")


def _run(browser: str, *args: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    done = subprocess.run(
        [browser, *flags, *args], capture_output=True, text=True, timeout=180, check=True
    )
    return done.stdout


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    kwargs = synthetic_results(tmp_path_factory.mktemp("browser"))
    build_report(**kwargs)
    return Path(kwargs["out_html"])


def test_every_image_decodes_in_chromium(report):
    browser = _browser()
    probed = report.with_name("probed.html")
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _run(browser, "--virtual-time-budget=10000", "--dump-dom", probed.as_uri())
    match = re.search(r'data-probe="(\d+)/(\d+)/(\d+)"', dom)
    assert match, "the probe did not run (page failed to load?)"
    ok, total, tables = map(int, match.groups())
    assert total == N_FIGURES
    assert ok == total, f"only {ok} of {total} images decoded"
    assert tables >= 6


def _coloured_fraction(browser: str, page: Path, shot: Path) -> float:
    """Share of strongly coloured pixels in a tall screenshot of ``page``."""
    _run(
        browser,
        "--hide-scrollbars",
        "--window-size=1280,6000",
        f"--screenshot={shot}",
        page.as_uri(),
    )
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int16)
    assert pixels.std() > 20, "screenshot is blank"
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 100).mean())


def test_screenshot_shows_the_figures(report, tmp_path):
    browser = _browser()
    with_figures = _coloured_fraction(browser, report, tmp_path / "full.png")
    # The same page with every image emptied: what text, tables and links alone give.
    bare = report.with_name("bare.html")
    bare.write_text(re.sub(r'src="data:image/png;base64,[^"]+"', 'src=""', report.read_text()))
    without = _coloured_fraction(browser, bare, tmp_path / "bare.png")
    assert with_figures > 0.005 and with_figures > 5 * without
