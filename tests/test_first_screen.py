"""The report opens on the attention: a strip of gallery images with every
attention map and the baseline's CAM, then the headline numbers; both in
the first 1280 x 800 screen in Chromium, on a printed page and in the
notebook's frame."""

import base64
import io

import numpy as np
import pytest
from test_browser import _launch, _sync_playwright

from explain_attn.report.first_screen import first_screen, headline_numbers


def _png_size(uri):
    from PIL import Image

    payload = base64.b64decode(uri.split(",", 1)[1])
    return Image.open(io.BytesIO(payload)).size


def test_strip_shows_the_gallery_first_choices_with_every_map(tiny_report):
    report, _, _ = tiny_report
    screen = first_screen(report)
    layers = [
        row["layer"].rsplit("/", 1)[-1]
        for row in report.data["explanations"]
        if row["method"] == "attention"
    ]
    assert layers  # the tiny attention model has spatial attention
    assert screen.columns == [
        "image · mask",
        *layers,
        f"{report.data['models'][-1]['key']} Grad-CAM",  # the baseline's
    ]
    # The first examples in the order the gallery chose them (rank 0, 1, ...).
    ranks = {example["index"]: example["rank"] for example in report.gallery}
    shown = [example["index"] for example in screen.examples]
    assert [ranks[i] for i in shown] == list(range(len(shown)))
    assert len(shown) == min(len(report.gallery), 2 * 2)  # 2 rows of 2
    width, height = _png_size(screen.strip)
    assert width > 2 * height  # a strip, not a page


def test_headline_numbers_match_the_per_image_numbers(tiny_report):
    report, _, _ = tiny_report
    data = report.data
    numbers = dict(headline_numbers(data))
    labels = np.array(data["per_image"]["labels"])
    for row in data["models"]:
        predicted = np.array(data["per_image"]["predictions"][row["key"]])
        accuracy = (predicted == labels).mean()  # recomputed from the images
        assert numbers[f"{row['name']} accuracy"].startswith(
            f"{100 * accuracy:.1f}% ["
        )
    reference = data["reference"]["id"]
    shown = 0
    for row in data["explanations"]:
        if row["method"] == "attention":
            name = row["short_label"]  # the layer
        elif row["id"] == reference:
            name = f"{row['model']} {row['short_label']}"  # baseline's CAM
        else:
            continue  # the attention model's own CAM: not a headline
        shown += 1
        mass = np.array(data["per_image"]["metrics"][row["id"]]["mass_in_mask"])
        value = numbers[f"mass in mask, {name}"]
        assert value.startswith(f"{np.nanmean(mass):.3f} [")
    masses = [what for what in numbers if what.startswith("mass in mask")]
    assert len(masses) == shown + 2  # and the flat and centre baselines
    flat = np.array(data["per_image"]["baselines"]["flat"]["mass_in_mask"])
    assert numbers["mass in mask, flat map (chance)"].startswith(
        f"{flat.mean():.3f}"
    )


def test_first_screen_comes_before_the_findings(tiny_report):
    _, html_path, _ = tiny_report
    html = html_path.read_text(encoding="utf-8")
    assert html.index('id="first-screen"') < html.index('id="findings"')


def test_notebook_frame_opens_on_the_strip(tiny_report):
    from explain_attn.notebook import report_frame

    report, _, _ = tiny_report
    frame = report_frame(report)
    # The frame's srcdoc holds the page, escaped once.
    assert frame.index("id=&#34;first-screen") < frame.index("id=&#34;findings")


def _boxes(page):
    return page.eval_on_selector_all(
        "#first-screen img",
        "images => images.map(i => {const r = i.getBoundingClientRect();"
        " return [i.naturalWidth, r.top, r.bottom, r.width]})",
    )


@pytest.mark.parametrize(
    "media, viewport",
    [
        ("screen", {"width": 1280, "height": 800}),  # a laptop
        ("print", {"width": 794, "height": 1123}),  # A4 at 96 CSS px/inch
    ],
)
def test_first_screen_shows_the_maps_in_chromium(tiny_report, media, viewport):
    _, html_path, _ = tiny_report
    sync_playwright = _sync_playwright()
    with sync_playwright() as playwright:
        browser = _launch(playwright)
        try:
            page = browser.new_page(viewport=viewport)
            page.emulate_media(media=media)
            page.goto(html_path.as_uri())
            page.wait_for_load_state("load")
            boxes = _boxes(page)
        finally:
            browser.close()
    assert len(boxes) == 2  # the strip of maps, the headline figures
    for natural_width, top, bottom, width in boxes:
        assert natural_width > 0  # decoded
        assert 0 <= top < bottom <= viewport["height"]  # wholly on screen
        assert width >= 0.6 * min(viewport["width"], 1100)  # legible
