"""The explorer's payload: thumbnails where the script looks for them,
metric values in thousandths, and the notebook displays."""

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from explain_attn.report.explorer import (
    SHEET_TILES,
    Thumbnails,
    explorer_payload,
    sprite_sheets,
)


def _decode(uri):
    prefix = "data:image/jpeg;base64,"
    assert uri.startswith(prefix)
    return np.asarray(
        Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :])))
    )


def test_sprite_sheets_place_tile_i_at_its_row_and_column():
    count = SHEET_TILES * SHEET_TILES + 3  # two sheets
    levels = (np.arange(count) * 37 % 256).astype(np.uint8)
    tiles = np.repeat(levels, 64).reshape(count, 8, 8)
    sheets = sprite_sheets(tiles, quality=95)
    assert len(sheets) == 2
    first, second = _decode(sheets[0]), _decode(sheets[1])
    assert first.shape == (SHEET_TILES * 8, SHEET_TILES * 8)
    assert second.shape == (8, 3 * 8)
    for index in (0, 1, 33, SHEET_TILES * SHEET_TILES - 1):
        row, column = divmod(index, SHEET_TILES)
        tile = first[row * 8 : row * 8 + 8, column * 8 : column * 8 + 8]
        assert abs(float(tile.mean()) - levels[index]) < 3
    last = second[:, 16:24]
    assert abs(float(last.mean()) - levels[-1]) < 3


class _Explanation:
    def __init__(self, key):
        self.key, self.label, self.method = key, f"label {key}", "attention"


def test_thumbnails_keep_every_image_and_scaled_maps():
    explanation = _Explanation("m:layer")
    thumbnails = Thumbnails([explanation], count=5, image_shape=(64, 64))
    rng = np.random.default_rng(0)
    images = rng.random((5, 64, 64, 3)).astype(np.float32)
    maps = rng.random((5, 4, 4))
    maps[4] = 2.0  # constant: all zero after scaling
    thumbnails(0, images[:3], {explanation: maps[:3]})
    thumbnails(3, images[3:], {explanation: maps[3:]})
    thumbnails = thumbnails.result  # The `Tiles` of every image.
    assert thumbnails.images.shape == (5, 32, 32, 3)
    # Area-like averaging of 2 x 2 blocks, to within rounding.
    expected = images.reshape(5, 32, 2, 32, 2, 3).mean(axis=(2, 4))
    assert np.abs(thumbnails.images / 255 - expected).max() < 0.15
    kept = thumbnails.maps[explanation]
    assert kept.shape == (5, 4, 4)
    low = maps[0].min()
    span = maps[0].max() - low
    np.testing.assert_array_equal(
        kept[0], np.round(255 * (maps[0] - low) / span).astype(np.uint8)
    )
    assert kept[4].max() == 0


def test_label_maps_kept_at_mask_size_on_one_scale():
    mask = _Explanation("data/mask/true")
    gate = _Explanation("m:gate")
    thumbnails = Thumbnails(
        [gate],
        count=2,
        image_shape=(64, 64),
        label_maps=[mask],
        num_labels=3,
    )
    labels = np.zeros((2, 64, 64), np.int64)
    labels[0, :32, :] = 2  # top half class 2, bottom half background
    labels[1, :, 32:] = 1  # right half class 1
    images = np.zeros((2, 64, 64, 3), np.float32)
    thumbnails(0, images, {mask: labels, gate: np.ones((2, 4, 4))})
    thumbnails = thumbnails.result
    kept = thumbnails.maps[mask]
    assert list(thumbnails.maps) == [mask, gate]
    # Nearest label at each 16 x 16 tile pixel, label k as k / 2 of 255.
    expected = np.zeros((2, 16, 16), np.uint8)
    expected[0, :8, :] = 255
    expected[1, :, 8:] = 128
    np.testing.assert_array_equal(kept, expected)


def test_payload_columns_and_thousandths():
    data = {
        "dataset": {"class_names": ["a", "b"]},
        "models": [{"key": "m", "name": "model"}],
        "explanations": [
            {"id": "m:layer", "short_label": "layer", "model": "m"}
        ],
        "per_image": {
            "labels": [0, 1],
            "predictions": {"m": [0, 0]},
            "metrics": {"m:layer": {"mass_in_mask": [0.4864, float("nan")]}},
            "agreement_with_reference": {"m:layer": {"spearman": [-1.0, 0.5]}},
        },
    }
    payload = explorer_payload(data)
    assert payload["columns"][0]["metric"] == "mass in mask"
    assert payload["columns"][1]["metric"] == "agreement spearman"
    assert payload["values"] == [[486, None], [-1000, 500]]
    assert payload["thumbnails"] is None
    json.dumps(payload, allow_nan=False)


def test_report_displays_in_a_notebook(tiny_report):
    report, _, _ = tiny_report
    html = report._repr_html_()
    assert html.startswith("<iframe srcdoc=")
    assert "&lt;h1&gt;Attention report" in html  # the page, escaped
    assert "<script>" not in html


def test_overlay_displays_in_a_notebook():
    from explain_attn.notebook import overlay

    image = np.zeros((16, 16, 3), np.float32)
    shown = overlay(image, np.eye(4), title="<b>layer</b>")
    html = shown._repr_html_()
    assert 'src="data:image/png;base64,' in html
    assert "&lt;b&gt;layer&lt;/b&gt;" in html
    with pytest.raises(ValueError, match="must be"):
        overlay(image[..., 0], np.eye(4))


def test_build_report_through_the_python_api_renders(report_inputs):
    from explain_attn.data import load_dataset
    from explain_attn.report import build_report, report_html
    from explain_attn.report.models import load_report_models

    test = load_dataset(str(report_inputs["data"]))
    models = load_report_models(
        [str(report_inputs["attention"])],
        str(report_inputs["baseline"]),
        safe_mode=True,
        say=lambda *a: None,
    )
    report = build_report(
        models, test, faithfulness=False, verbose=0, num_examples=2
    )
    html = report_html(report)
    assert "(Python API)" in html
    thumbnails = report.explorer["thumbnails"]
    assert len(thumbnails["images"]) == 1  # 12 images: one sheet
    assert len(thumbnails["maps"]) == len(report.data["explanations"])
    assert len(report.explorer["labels"]) == len(test.labels)
