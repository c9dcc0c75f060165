"""The bundled OHIF viewer in Debian's Chromium against the real server: list, open, scroll.

Skipped (with the reason) only when the viewer or the browser is not installed; scripts/setup
installs both, so CI runs it.
"""

from __future__ import annotations

import io
import re
import shutil
from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from obelisk.http.routes.static import default_viewer_directory
from tests.integration.server_process import ObeliskProcess
from tests.support.images import ct_series

CHROMIUM = "/usr/bin/chromium"
STUDIES = {"Brain": "1.2.826.0.1.3680043.8.498.201", "Chest": "1.2.826.0.1.3680043.8.498.202"}

if not (default_viewer_directory() / "index.html").is_file():
    pytest.skip("OHIF viewer not installed: run scripts/install-viewer", allow_module_level=True)
if shutil.which(CHROMIUM) is None:
    pytest.skip("Debian chromium not installed (scripts/setup --system)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def server(obelisk_factory: Callable[..., ObeliskProcess]) -> Iterator[ObeliskProcess]:
    with obelisk_factory() as running:
        for description, study_uid in STUDIES.items():
            slices = ct_series(
                5, study_uid=study_uid, series_uid=study_uid + ".1", description=description
            )
            for data in slices:
                assert httpx.post(running.url + "/instances", content=data).status_code == 200
        yield running


def _bright_fraction(png: bytes) -> float:
    grey = np.asarray(Image.open(io.BytesIO(png)).convert("L"))
    return float((grey > 30).mean())


def test_viewer_lists_opens_and_scrolls(server: ObeliskProcess) -> None:
    expect = sync_api.expect
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url + "/ui/viewer/")
            # the study list, from QIDO-RS, shows both studies with their descriptions
            for description in STUDIES:
                expect(page.get_by_text(description, exact=True)).to_be_visible(timeout=60_000)
            page.get_by_text("Brain", exact=True).click()
            page.get_by_role("button", name="Basic Viewer").first.click()
            canvas = page.locator("canvas.cornerstone-canvas").first
            expect(canvas).to_be_visible(timeout=60_000)
            expect(page.get_by_text("(1/5)")).to_be_visible(timeout=30_000)
            skip_tour = page.get_by_text("Skip all")
            if skip_tour.is_visible():
                skip_tour.click()
            # a non-blank image: the sphere's section is drawn (WADO-RS metadata + frames)
            page.wait_for_function(
                "() => document.querySelector('canvas.cornerstone-canvas').width > 0"
            )
            first = canvas.screenshot()
            assert _bright_fraction(first) > 0.02
            box = canvas.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            # A wheel event that arrives while the viewport is still settling (or under a tour
            # pop-up) is dropped: scroll again until another slice is shown.
            another_slice = page.get_by_text(re.compile(r"\([2-5]/5\)"))
            # Under load a wheel event was seen lost ten times in a row: every other try uses
            # OHIF's "next image" key instead, with the pointer back over the image.
            for attempt in range(12):
                if skip_tour.is_visible():
                    skip_tour.click()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                if attempt % 2:
                    page.keyboard.press("ArrowDown")
                else:
                    page.mouse.wheel(0, 120)
                try:
                    expect(another_slice.first).to_be_visible(timeout=5_000)
                    break
                except AssertionError:
                    continue
            expect(another_slice.first).to_be_visible(timeout=5_000)
            page.wait_for_timeout(500)
            second = canvas.screenshot()
            assert _bright_fraction(second) > 0.02
            difference = np.abs(
                np.asarray(Image.open(io.BytesIO(first)).convert("L"), dtype=int)
                - np.asarray(Image.open(io.BytesIO(second)).convert("L"), dtype=int)
            )
            assert difference.mean() > 1  # another slice is on screen
        finally:
            browser.close()
