"""The report on streamed data: one pass, per-image numbers, a few images.

`build_report` takes a streamed source (`explain_attn.data.open_source`) as
well as an in-memory `Dataset`, through one code path: the same data gives
the same report either way, and `report_from_sources` with given models
never builds the whole test split in memory.
"""

import json

import numpy as np
import pytest
from PIL import Image

from explain_attn.data import Dataset, load_dataset, open_source
from explain_attn.data import loaders as loaders_module
from explain_attn.data.loaders import take_images
from explain_attn.explanations.attention import channel_attention_weights
from explain_attn.report import build_report, render_html, report_from_sources
from explain_attn.report.baselines import BaselineValues, baseline_values
from explain_attn.report.build import write_json
from explain_attn.report.channels import (
    ChannelStatistics,
    channel_entropy,
    class_similarity,
)
from explain_attn.report.faithfulness import faithfulness_settings
from explain_attn.report.models import ReportModel, load_report_models
from explain_attn.report.warnings import (
    MaskShares,
    mask_area_warnings,
    mask_warnings,
)

FAST = {"intervention_images": 5, "randomization_images": 3}
"""Faithfulness samples smaller than the 12 test images."""


@pytest.fixture(scope="module")
def models(report_inputs):
    return load_report_models(
        [str(report_inputs["attention"])],
        str(report_inputs["baseline"]),
        safe_mode=True,
        say=lambda *args: None,
    )


@pytest.fixture(scope="module")
def folder(report_inputs, tmp_path_factory):
    """The `report_inputs` data as a PNG folder with mask files."""
    root = tmp_path_factory.mktemp("report_folder")
    with np.load(report_inputs["data"]) as arrays:
        images, labels = arrays["images"], arrays["labels"]
        masks, names = arrays["masks"], arrays["class_names"]
    for index, (image, label) in enumerate(zip(images, labels, strict=True)):
        for kind in ("images", "masks"):
            (root / kind / f"c{label}").mkdir(parents=True, exist_ok=True)
        pixels = np.round(255 * image).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"images/c{label}/{index:02d}.png")
        Image.fromarray(masks[index].astype(np.uint8) * 255).save(
            root / f"masks/c{label}/{index:02d}.png"
        )
    assert len(names) == 2
    return root


def _numbers(report):
    """The report's JSON text without the library versions."""
    data = dict(report.data)
    data.pop("versions")
    return json.dumps(
        json.loads(json.dumps(data, default=float)), sort_keys=True
    )


def _report(models, test):
    settings = faithfulness_settings("fast", deletion_images=4, **FAST)
    return build_report(
        models, test, num_examples=3, seed=0, verbose=0,
        faithfulness=settings,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["npz", "folder"])
def test_streamed_and_in_memory_data_give_the_same_report(
    models, report_inputs, folder, kind
):
    path = str(report_inputs["data"] if kind == "npz" else folder)
    source = open_source(path)
    assert not isinstance(source, Dataset)
    in_memory = load_dataset(path)
    assert isinstance(in_memory, Dataset)
    streamed = _report(models, source)
    loaded = _report(models, in_memory)
    assert _numbers(streamed) == _numbers(loaded)
    data = streamed.data
    # What the test names, spelled out: the comparison covers them.
    assert data["models"][0]["accuracy"]["n"] == 12
    assert data["explanations"][0]["summary"]["all"]["mass_in_mask"]["n"]
    assert [row["id"] for row in data["baselines"]] == ["flat", "centre"]
    assert "warnings" in data and data["dataset"]["has_masks"]
    assert data["dataset"]["fingerprint"] == in_memory.fingerprint()
    assert data["faithfulness"]["settings"]["num_intervention_images"] == 5
    for streamed_example, loaded_example in zip(
        streamed.gallery, loaded.gallery, strict=True
    ):
        assert streamed_example["index"] == loaded_example["index"]
        np.testing.assert_array_equal(
            streamed_example["image"], loaded_example["image"]
        )
        np.testing.assert_array_equal(
            streamed_example["mask"], loaded_example["mask"]
        )


def test_report_from_sources_never_holds_the_test_split(
    report_inputs, monkeypatch, tmp_path
):
    def refused(*args, **kwargs):
        raise AssertionError("load_dataset called: the split was loaded")

    monkeypatch.setattr(loaders_module, "load_dataset", refused)
    sizes = []
    original = Dataset.__post_init__

    def recording(self):
        sizes.append(len(self.images))
        original(self)

    monkeypatch.setattr(Dataset, "__post_init__", recording)
    report = report_from_sources(
        str(report_inputs["data"]),
        attention_models=[str(report_inputs["attention"])],
        baseline_model=str(report_inputs["baseline"]),
        num_examples=3,
        verbose=0,
        faithfulness=faithfulness_settings("fast", deletion_images=4, **FAST),
    )
    # Only the gallery's 3 images and the checks' samples (5, 3, 4) were
    # ever held as a dataset; the test split has 12.
    assert sorted(sizes) == [3, 3, 4, 5]
    assert report.data["dataset"]["num_images"] == 12
    assert len(report.data["per_image"]["labels"]) == 12
    render_html(report, tmp_path / "report.html")
    write_json(report, tmp_path / "report.json")
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="faithfulness"' in html and "<img" in html


def test_take_images_reads_the_chosen_images_of_any_source(folder):
    loaded = load_dataset(str(folder))
    indices = [7, 0, 3]
    for source in (open_source(str(folder)), loaded):
        taken = take_images(source, indices)
        np.testing.assert_array_equal(taken.images, loaded.images[indices])
        np.testing.assert_array_equal(taken.masks, loaded.masks[indices])
        np.testing.assert_array_equal(taken.labels, loaded.labels[indices])
        assert taken.class_names == loaded.class_names


def _chunks(count, step):
    return [slice(start, start + step) for start in range(0, count, step)]


def test_observers_equal_the_whole_array_computations():
    rng = np.random.default_rng(0)
    masks = rng.random((10, 6, 7)) > 0.7
    masks[0] = True  # full mask
    masks[1] = False  # empty mask
    baselines, shares = BaselineValues(), MaskShares()
    for part in _chunks(10, 4):
        baselines(part.start, None, {}, None, masks[part])
        shares(part.start, None, {}, None, masks[part])
    expected = baseline_values(masks)
    for key, row in expected.items():
        for name, values in row.items():
            np.testing.assert_array_equal(baselines.result[key][name], values)
    np.testing.assert_array_equal(
        shares.result, masks.reshape(10, -1).mean(axis=1)
    )
    empty = MaskShares()
    empty(0, None, {}, None, None)
    assert empty.result is None and BaselineValues().result is None
    # Almost every mask tiny: the warning from shares is the masks' own.
    small = np.zeros((4, 10, 10), bool)
    observed = MaskShares()
    observed(0, None, {}, None, small)
    assert mask_area_warnings(observed.result) == mask_warnings(small)


def test_channel_statistics_in_chunks_equal_the_whole_weights(
    layered_model, images
):
    labels = np.arange(len(images)) % 3
    entry = ReportModel(
        key="m", role="attention", name="M", model=layered_model
    )
    statistics = ChannelStatistics([entry], num_classes=3, batch_size=2)
    for part in _chunks(len(images), 3):
        statistics(part.start, images[part], {}, labels[part], None)
    section = statistics.result
    rows = {row["layer"]: row for row in section["models"][0]["modules"]}
    assert rows
    for path, row in rows.items():
        weights = np.asarray(
            channel_attention_weights(layered_model, images, path), np.float64
        )
        entropy = channel_entropy(weights)
        means = np.stack([weights[labels == k].mean(axis=0) for k in range(3)])
        assert row["classes"] == [0, 1, 2]
        np.testing.assert_allclose(row["class_means"], means, rtol=1e-6)
        assert row["mean_weight"] == pytest.approx(weights.mean(), rel=1e-6)
        # float32 weights from batches of 2 and of 10: equal to ~1e-7.
        assert row["entropy"]["mean"] == pytest.approx(entropy.mean(), abs=1e-7)
        assert row["entropy"]["std"] == pytest.approx(entropy.std(), abs=1e-7)
        assert row["entropy"]["n"] == len(images)
        assert row["class_similarity"] == pytest.approx(
            class_similarity(means), rel=1e-6
        )
