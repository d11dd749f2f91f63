"""The web demo as visitors and Space owners meet it: ``python spaces/aha-explain/app.py`` started on 127.0.0.1,
in a real browser (Debian's chromium, driven by Playwright).

What a visitor does: upload an image, pick a class, move the refinement slider, upload files that are no usable
image, pick an example. What must hold: the numbers and the overlay on the page are those the library computes
for the same image (the image-attribution pipeline, same explainer, target and protocol), every bad file gets a
message in the page and no stack trace, and the server keeps serving. Started without an explainer, the app
trains ``aha demo``'s first (quick preset here), saying so, and reuses it on the next start.
"""

import io
import os
import re
import time

import numpy as np
import pytest
from browser_helpers import CHROMIUM, READY, launch_chromium, serving
from PIL import Image
from test_pipeline import LABELS, random_image, saved  # noqa: F401 (saved: the explainer folder fixture)
from transformers import pipeline

from aha.imaging.images import MAX_PIXELS
from aha.imaging.visualization import overlay


pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module", autouse=True)
def chromium_installed():
    if not os.path.exists(CHROMIUM):
        message = f"Debian's chromium is not at {CHROMIUM} (apt-get install chromium)"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


def shown_text(page, selector: str, expected: str, timeout: float = 60) -> str:
    """The text of ``selector`` once it contains ``expected``."""
    page.locator(selector).filter(has_text=expected).wait_for(timeout=timeout * 1000)
    return page.inner_text(selector)


def shown_aucs(page) -> dict[str, tuple[float, float]]:
    """Method -> (deletion AUC, insertion AUC), as the scores table on the page shows them."""
    rows = re.findall(r"^(.+?)\t[^\t]+\t([0-9.]+)\t([0-9.]+)$", page.inner_text("#scores"), re.MULTILINE)
    return {name: (float(deletion), float(insertion)) for name, deletion, insertion in rows}


def shown_image(page, selector: str) -> Image.Image:
    source = page.locator(f"{selector} img").get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB")


def upload(page, path) -> None:
    """Upload the file at ``path`` (clearing the one shown first, as a visitor would)."""
    clear = page.locator("#upload button[aria-label='Clear']")
    if clear.count():  # a file is shown: clear it as a visitor would, and wait for the page to empty
        clear.click()
        page.locator("#scores").filter(has_text="AHA").wait_for(state="detached")
    page.set_input_files("#upload input[type=file]", str(path))


def assert_same_as_library(page, result, image) -> None:
    """The AHA row of the page's table and the AHA overlay equal the pipeline's ``result`` on ``image`` (the page
    shows the bare overlay, at the image's size; the pipeline's ``overlay`` adds a colour bar and a caption)."""
    deletion, insertion = shown_aucs(page)["AHA"]
    assert deletion == pytest.approx(result["deletion"].auc[0].item(), abs=6e-5)  # the page rounds to 4 decimals
    assert insertion == pytest.approx(result["insertion"].auc[0].item(), abs=6e-5)
    shown, expected = (
        np.asarray(shown_image(page, "#overlay-0"), dtype=int),
        np.asarray(overlay(image, result["attribution"]), dtype=int),
    )
    assert shown.shape == expected.shape  # at the image's own size
    assert np.abs(shown - expected).max() <= 1  # lossless PNG


def test_a_visitor_explains_an_image_and_bad_files_get_messages(saved, tmp_path):
    started = time.monotonic()
    photo, example = random_image(40, 57, seed=3), random_image(48, 48, seed=4)
    photo.save(tmp_path / "photo.png")
    example.save(tmp_path / "example.png")
    pipe = pipeline("image-attribution", model=str(saved), device="cpu")
    predicted = pipe(photo)["target_label"]
    chosen = next(label for label in LABELS if label != predicted)

    with (
        serving("--explainer", saved, "--rise_masks", 40, "--examples", tmp_path / "example.png") as server,
        playwright_api.sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(server.url)

        # an image: the top classes, the predicted class explained by AHA and the comparison methods, with times
        upload(page, tmp_path / "photo.png")
        shown_text(page, "#status", f"photo.png: predicted {predicted} ")
        shown_text(page, "#scores", f"Class {predicted},")
        assert predicted in page.inner_text("#top-classes")
        assert set(shown_aucs(page)) == {"AHA", "Chefer", "RISE (40 masks)"}
        assert re.search(r"RISE \(40 masks\)\t[0-9.]+ m?s \([0-9.]+x AHA\)", page.inner_text("#scores"))
        assert_same_as_library(page, pipe(photo, overlay=True, curves=True), photo)

        # another class, from the picker: the page's numbers are the library's for that class
        page.locator("#class-picker input").click()
        page.get_by_role("option", name=chosen).click()
        shown_text(page, "#scores", f"Class {chosen},")
        assert_same_as_library(page, pipe(photo, target=chosen, overlay=True, curves=True), photo)
        for index in (1, 2):  # Chefer's and RISE's overlays too, at the image's size
            assert shown_image(page, f"#overlay-{index}").size == photo.size

        # two refinement steps (the slider's number box; the slider fires when it loses focus)
        page.locator("#refine-steps input[type=number]").fill("2")
        page.locator("#refine-steps input[type=number]").press("Tab")
        shown_text(page, "#scores", f"Class {chosen}, AHA with 2 refinement steps")
        assert_same_as_library(page, pipe(photo, target=chosen, refine_steps=2, overlay=True, curves=True), photo)

        # files that are no usable image: a message in the page, the previous results gone, no stack trace
        (tmp_path / "notes.txt").write_text("a text file, not a picture\n")
        frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
        frames[0].save(tmp_path / "moving.gif", save_all=True, append_images=frames[1:], duration=100, loop=0)
        Image.new("RGB", (1, 1)).save(tmp_path / "dot.png")
        Image.new("RGB", (MAX_PIXELS // 1024 + 1, 1024)).save(tmp_path / "huge.png")
        bad = {
            "notes.txt": "is not an image",
            "moving.gif": "is an animated image",
            "dot.png": "is only 1 x 1 pixels",
            "huge.png": "too large: at most",
        }
        for name, expected in bad.items():
            upload(page, tmp_path / name)
            message = shown_text(page, "#status", expected)
            assert name in message and "cannot be explained" in message
            assert page.locator("#overlay-0 img").count() == 0 and "AHA" not in page.inner_text("#scores")
            assert "Traceback" not in page.inner_text("body")

        # the page and the server still work: an example, then the first image again
        page.locator("#examples .thumbnail-item").first.click()  # the slider still says 2 refinement steps
        shown_text(page, "#status", f"Example 1: predicted {pipe(example)['target_label']} ")
        shown_text(page, "#scores", f"Class {pipe(example)['target_label']}, AHA with 2 refinement steps")
        assert_same_as_library(page, pipe(example, refine_steps=2, overlay=True, curves=True), example)
        upload(page, tmp_path / "photo.png")
        shown_text(page, "#status", f"photo.png: predicted {predicted} ")
        shown_text(page, "#scores", f"Class {predicted}, AHA with 2 refinement steps")
        browser.close()
        assert server.process.poll() is None and "Traceback" not in server.output()
    print(f"\napp served in {server.startup_seconds:.1f} s; browser test {time.monotonic() - started:.1f} s")


def test_without_an_explainer_the_app_trains_the_demos_first_then_reuses_it(tmp_path):
    folder = tmp_path / "aha-demo"
    with (
        serving("--demo_dir", folder, "--demo_preset", "quick", timeout=900) as server,
        playwright_api.sync_playwright() as playwright,
    ):
        output = server.output()
        announced = output.index(
            f"[aha space] no trained explainer in {folder / 'shapes' / 'explainer'}: training one now"
        )
        assert announced < output.index("[aha demo] training the explainer") < output.index(READY)
        assert (folder / "shapes" / "explainer" / "config.json").is_file()
        assert not (folder / "shapes" / "results.md").exists()  # the page needs the explainer, not the demo's report
        browser = launch_chromium(playwright)
        page = browser.new_page(viewport={"width": 1400, "height": 1100})
        page.goto(server.url)
        page.locator("#examples .thumbnail-item").first.wait_for()
        assert page.locator("#examples .thumbnail-item").count() == 6  # AHA Shapes test images
        page.locator("#examples .thumbnail-item").nth(2).click()
        shown_text(page, "#status", "Example 3: predicted ")
        assert set(shown_aucs(page)) == {"AHA", "Chefer", "RISE (500 masks)"}
        browser.close()
    with serving("--demo_dir", folder) as server:
        assert "no trained explainer" not in server.output() and "[aha demo]" not in server.output()
