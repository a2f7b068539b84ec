"""Segmentation models: task, Seg-Grad-CAM, Dice/IoU, the CLI report.

Public-style U-Nets from `zoo_models` at 32x32 with a few filters; a
folder of 6 shapes with their masks as targets.
"""

import json
import shutil
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

from explain_attn.cli import main
from explain_attn.data import load_dataset, split_dataset, synthetic
from explain_attn.explanations.seg_cam import SegGradCAM
from explain_attn.faithfulness.segmentation import region_deletion
from explain_attn.metrics.segmentation import (
    dice_per_class,
    image_scores,
    iou_per_class,
    pixel_accuracy,
)
from explain_attn.models.task import check_task, model_task
from explain_attn.report.schema import report_schema, undeclared, validate

sys.path.insert(0, str(Path(__file__).parent))
import zoo_models  # noqa: E402
from catalogue import SEGMENTATION_CASES, assert_bad_input  # noqa: E402


@pytest.fixture(scope="module")
def unets():
    keras.utils.set_random_seed(3)
    return {
        "attention": zoo_models.public_unet(gates=True),
        "plain": zoo_models.public_unet(gates=False),
        "sigmoid": zoo_models.public_unet(gates=True, sigmoid=True),
    }


@pytest.fixture(scope="module")
def folder(tmp_path_factory, unets):
    root = tmp_path_factory.mktemp("seg")
    images, labels, masks = synthetic.generate(6, split="test", seed=1)
    names = [f"img{i}" for i in range(6)]
    synthetic.write_split(root / "data", images, labels, masks, names)
    for name, model in unets.items():
        model.save(root / f"{name}.keras")
    synthetic.write_split(root / "no_masks", images, labels, masks, names)
    shutil.rmtree(root / "no_masks" / "masks")
    keras.utils.set_random_seed(0)
    zoo_models.baseline(32).save(root / "classifier.keras")
    zoo_models.public_unet(num_outputs=3).save(root / "three.keras")
    inputs = keras.Input((32, 32, 3))
    coarse = keras.layers.Conv2D(4, 3, strides=2, padding="same")(inputs)
    coarse = keras.layers.Conv2D(5, 1, activation="softmax")(coarse)
    keras.Model(inputs, coarse, name="coarse").save(root / "coarse.keras")
    return root


def _hand_seg_grad_cam(model, images, cls, region=None):
    """Seg-Grad-CAM by an independent route: a copy of the last 1x1 conv
    without its activation, a GradientTape, NumPy normalisation."""
    features = keras.Model(model.input, model.get_layer("dec").output)
    last = model.layers[-1]
    if isinstance(last, keras.layers.Activation):
        last = model.get_layer("logits")
    copy = keras.layers.Conv2D(last.filters, 1)
    copy.build((None, None, None, 4))
    copy.set_weights(last.get_weights())
    activations = tf.constant(features(images))
    with tf.GradientTape() as tape:
        tape.watch(activations)
        logits = copy(activations)
        if region is None:
            if last.filters == 1:
                region = tf.cast(logits[..., 0] > 0, tf.float32)
            else:
                region = tf.cast(tf.argmax(logits, -1) == cls, tf.float32)
        score = tf.reduce_sum(logits[..., cls] * region)
    gradients = tape.gradient(score, activations).numpy()
    weights = gradients.mean(axis=(1, 2))
    cam = np.maximum(np.einsum("bhwc,bc->bhw", activations.numpy(), weights), 0)
    low = cam.min(axis=(1, 2), keepdims=True)
    span = cam.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (cam - low) / np.where(span > 0, span, 1), 0)


def test_task_read_from_the_output_and_contradictions_refused(unets):
    assert model_task(unets["attention"]) == "segmentation"
    assert model_task(zoo_models.baseline(16)) == "classification"
    with pytest.raises(ValueError, match="segmentation model, not class"):
        check_task(unets["plain"], "classification")


def test_seg_grad_cam_matches_a_hand_computation(unets):
    model = unets["attention"]
    images = np.random.default_rng(0).random((1, 32, 32, 3), np.float32)
    probabilities = model(images).numpy()
    cls = int(probabilities[0, 0, 0].argmax())
    cam = SegGradCAM(model, "dec")
    ours = cam.batch(images, np.array([cls], np.int32))
    expected = _hand_seg_grad_cam(model, images, cls)
    assert expected.max() == 1.0
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    region = np.zeros((1, 32, 32), np.float32)
    region[0, 8:20, 4:16] = 1
    ours = cam.batch(images, np.array([2], np.int32), regions=region)
    expected = _hand_seg_grad_cam(model, images, 2, tf.constant(region))
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_seg_grad_cam_of_a_sigmoid_output(unets):
    model = unets["sigmoid"]
    images = np.random.default_rng(1).random((2, 32, 32, 3), np.float32)
    ours = SegGradCAM(model, "dec").batch(images, np.array([-1, -1], np.int32))
    expected = _hand_seg_grad_cam(model, images, 0)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


def test_dice_and_iou_by_hand_with_empty_cases():
    target = np.zeros((3, 2, 3), int)
    predicted = np.zeros((3, 2, 3), int)
    target[0, 0, :2] = 1  # class 1: 2 true pixels, 1 predicted, 1 shared
    predicted[0, 0, 1] = 1
    predicted[0, 1, 2] = 2  # class 2 predicted, absent from the truth
    # Image 1: nothing anywhere. Image 2: class 2 everywhere, both.
    target[2], predicted[2] = 2, 2
    dice = dice_per_class(predicted, target, num_labels=3)
    iou = iou_per_class(predicted, target, num_labels=3)
    np.testing.assert_allclose(dice[0], [2 * 1 / 3, 0.0])
    np.testing.assert_allclose(iou[0], [1 / 2, 0.0])
    assert np.isnan(dice[1]).all() and np.isnan(image_scores(dice)[1])
    assert np.isnan(dice[2, 0]) and dice[2, 1] == 1.0
    np.testing.assert_allclose(image_scores(dice)[[0, 2]], [1 / 3, 1.0])
    np.testing.assert_allclose(pixel_accuracy(predicted, target), [4 / 6, 1, 1])
    with pytest.raises(ValueError, match="labels outside 0 .. 2"):
        dice_per_class(predicted + 1, target, num_labels=3)


def _run(*arguments):
    return CliRunner().invoke(main, [str(a) for a in arguments])


def test_layers_names_the_task_and_the_seg_grad_cam_default(folder):
    result = _run("layers", folder / "attention.keras")
    assert result.exit_code == 0, result.output
    assert "Task: segmentation" in result.output
    assert (
        "* bottom " in result.output
        and "Seg-Grad-CAM candidates" in result.output
    )
    assert "attention_gate" in result.output


def _check_explorer(html, data, baseline_dice, present):
    """The explorer's payload: each image's classes, the baseline's Dice
    (the test's own count), its thumbnails in order, and the same numbers
    in the JSON's ``per_image``."""
    start = html.index('id="explorer-data">') + len('id="explorer-data">')
    explorer = json.loads(html[start : html.index("</script>", start)])
    assert explorer["predictions"] is None and explorer["metric"] == "dice"
    assert explorer["labels"] == present == data["per_image"]["labels"]
    assert explorer["classes"] == data["dataset"]["labels"][1:]
    baseline = data["models"][-1]["key"]
    dice = {
        c["model"]: i
        for i, c in enumerate(explorer["columns"])
        if c["metric"] == "dice"
    }
    expected = [None if np.isnan(v) else round(1000 * v) for v in baseline_dice]
    assert explorer["values"][dice[baseline]] == expected
    maps = explorer["thumbnails"]["maps"]
    keys = list(maps)
    assert keys[:3] == [
        "data/mask/true",
        f"{data['models'][0]['key']}/mask/predicted",
        f"{baseline}/mask/predicted",
    ]
    assert maps[keys[2]]["column"] == dice[baseline]
    assert maps[keys[0]]["size"] == [16, 16]
    gates = [k for k in keys if "/attention/" in k]
    assert gates and any("/seg_grad_cam/" in k for k in keys)
    mass = data["per_image"]["mass_in_mask"][gates[0]]
    column = next(
        i
        for i, c in enumerate(explorer["columns"])
        if c["explanation"] == gates[0] and c["metric"] == "mass in mask"
    )
    assert explorer["values"][column] == [
        None if v is None else round(1000 * v) for v in mass
    ]
    assert "no explorer" not in " ".join(data["warnings"])


@pytest.mark.parametrize("attention", ["attention", "sigmoid"])
def test_cli_report_of_an_attention_unet_against_a_plain_one(
    folder, tmp_path, attention, unets
):
    baseline = "plain" if attention == "attention" else "sigmoid"
    output = tmp_path / "r.html"
    result = _run(
        "report", "--data", folder / "data", "--attention-model",
        folder / f"{attention}.keras", "--baseline-model",
        folder / f"{baseline}.keras", "--num-examples", 2, "--output", output,
        "--no-faithfulness",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(output.with_suffix(".json").read_text())
    assert data["task"] == "segmentation"
    schema = report_schema("segmentation")
    assert validate(data, schema) == [] and undeclared(data, schema) == []
    html = output.read_text()
    assert "Seg-Grad-CAM" in html and "Paired difference" in html
    # Dice of the baseline by an independent route: predict, encode, count.
    images, labels, masks = synthetic.generate(6, split="test", seed=1)
    order = np.argsort(labels, kind="stable")  # the folder's class order
    model = unets[baseline]
    probabilities = model(images[order] / np.float32(255)).numpy()
    if probabilities.shape[-1] == 1:
        predicted, target = probabilities[..., 0] > 0.5, masks[order]
        classes = [1]
    else:
        predicted = probabilities.argmax(-1)
        target = np.where(masks[order], labels[order][:, None, None] + 1, 0)
        classes = range(1, 5)
    scores = []
    for p, t in zip(predicted, target, strict=True):
        per = [
            2 * np.sum((p == c) & (t == c)) / (np.sum(p == c) + np.sum(t == c))
            for c in classes
            if np.sum(p == c) + np.sum(t == c)
        ]
        scores.append(np.mean(per) if per else np.nan)
    reported = data["models"][-1]["dice"]["mean"]
    assert reported == pytest.approx(np.nanmean(scores), abs=1e-9)
    present = [sorted({int(k) - 1 for k in np.unique(t) if k}) for t in target]
    _check_explorer(html, data, scores, present)
    gates = [row for row in data["maps"] if row["method"] == "attention"]
    assert gates and all(0 <= r["mass_in_mask"]["mean"] <= 1 for r in gates)


@pytest.mark.parametrize(("arguments", "message"), SEGMENTATION_CASES)
def test_bad_input_is_one_line_and_nothing_written(
    folder, tmp_path, arguments, message
):
    names = {
        "data": folder / "data", "no_masks": folder / "no_masks",
        "parts": tmp_path / "parts",
        **{n: folder / f"{n}.keras"
           for n in ("attention", "plain", "classifier", "coarse", "three")},
    }  # fmt: skip
    arguments = [a.format(**names) for a in arguments]
    suffix = ".npz" if arguments[0] == "maps" else ".html"
    output = tmp_path / f"out{suffix}"
    assert_bad_input(
        [*arguments, "--output", output], message, output, tmp_path
    )


@pytest.mark.slow
def test_train_then_report_with_record_and_interventions(folder, tmp_path):
    data = folder / "data"
    trained = {}
    for name, extra in (
        ("gated", []),
        ("control", ["--control", "--no-record"]),
    ):
        trained[name] = tmp_path / f"{name}.keras"
        result = _run(
            "train", "--task", "segmentation", "--data", data, "--epochs", 1,
            "--record-images", 2, *extra, "--output", trained[name],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "Test Dice:" in result.output
    history = json.loads(trained["gated"].with_suffix(".json").read_text())
    assert history["architecture"] == "attention_unet"
    assert len(history["loss"]) == 1
    control = keras.saving.load_model(trained["control"], compile=False)
    assert control.get_layer("gate1_control") is not None
    output = tmp_path / "r.html"
    result = _run(
        "report", "--data", data, "--attention-model", trained["gated"],
        "--baseline-model", trained["control"], "--num-examples", 1,
        "--faithfulness", "fast", "--randomization-images", 2,
        "--deletion-images", 2, "--deletion-steps", 2, "--output", output,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(output.with_suffix(".json").read_text())
    schema = report_schema("segmentation")  # With a record and the checks:
    assert validate(report, schema) == [] and undeclared(report, schema) == []
    (recorded,) = report["training_record"]
    assert recorded["epochs"] == [0.0, 1.0]
    assert {layer["path"] for layer in recorded["layers"]} == {
        "gate1_resample", "gate2_resample"
    }  # fmt: skip
    gates = report["faithfulness"]["models"][0]["gates"]
    clean = report["models"][0]["dice"]["mean"]
    for gate in gates:  # Every test image is sampled: the same clean Dice.
        assert gate["dice"]["mean"] == pytest.approx(clean, abs=1e-12)
        for effect in gate["interventions"].values():
            change = effect["dice_change"]["mean_difference"]
            expected = effect["dice"]["mean"] - gate["dice"]["mean"]
            if effect["dice_change"]["nan_count"] == 0:
                assert change == pytest.approx(expected, abs=1e-12)
    randomization = report["faithfulness"]["randomization"]
    assert [row["key"] for row in randomization] == ["attention", "baseline"]
    maps = [check["map"] for check in randomization[0]["checks"]]
    assert maps == ["gate2_resample", "gate1_resample", "seg_grad_cam"]
    labels = [
        row["label"] for row in report["faithfulness"]["deletion"]["rows"]
    ]
    assert "attention: random map" in labels and len(labels) == 6
    html = output.read_text()
    assert "Attention during training" in html and "Randomisation" in html


def test_region_deletion_by_hand_on_a_pixelwise_model():
    """A 1x1 softmax conv: each pixel's probability depends on its own
    value only, so the curves can be computed pixel by pixel."""
    inputs = keras.Input((4, 4, 1))
    outputs = keras.layers.Conv2D(2, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    model.layers[-1].set_weights([np.array([[[[0.0, 3.0]]]]), np.zeros(2)])
    rng = np.random.default_rng(0)
    images = rng.random((2, 4, 4, 1)).astype(np.float32)
    regions = np.ones((2, 4, 4), bool)
    classes = np.array([1, 1])
    maps = images[..., 0]  # The class-1 evidence: its own pixel value.

    def score(x):  # Mean class-1 probability over the image.
        return np.mean(1 / (1 + np.exp(-3 * x[..., 0])), axis=(1, 2))

    mean = images.mean(axis=(1, 2), keepdims=True)
    ours = region_deletion(model, images, maps, classes, regions, steps=2)
    half = maps >= np.median(maps.reshape(2, -1), axis=1)[:, None, None]
    deleted = np.where(half[..., None], mean, images)
    inserted = np.where(half[..., None], images, mean)
    flat = score(np.broadcast_to(mean, images.shape))
    expected_deletion = (score(images) / 2 + score(deleted) + flat / 2) / 2
    expected_insertion = (flat / 2 + score(inserted) + score(images) / 2) / 2
    np.testing.assert_allclose(ours["deletion"], expected_deletion, rtol=1e-5)
    np.testing.assert_allclose(ours["insertion"], expected_insertion, rtol=1e-5)
    assert (ours["deletion"] < ours["insertion"]).all()


def test_demo_pair_on_a_folder_is_scored_on_held_out_images(
    tmp_path, monkeypatch
):
    """`report --task segmentation` without models trains the U-Net pair
    on the folder's training split (1 epoch here), scores it on the
    held-out split only, and a second run loads the pair from the cache
    and gives the same numbers."""
    images, labels, masks = synthetic.generate(20, split="train", seed=4)
    names = [f"img{i}" for i in range(20)]
    synthetic.write_split(tmp_path / "data", images, labels, masks, names)
    monkeypatch.setenv("EXPLAIN_ATTN_CACHE_DIR", str(tmp_path / "cache"))
    reports = []
    for run in (1, 2):
        output = tmp_path / f"demo{run}.html"
        options = ["--epochs", 1, "--num-examples", 1, "--no-faithfulness"]
        result = _run(
            "report",
            "--task",
            "segmentation",
            "--data",
            tmp_path / "data",
            *options,
            "--output",
            output,
        )
        assert result.exit_code == 0, result.output
        reports.append(json.loads(output.with_suffix(".json").read_text()))
    first, second = reports
    held_out = split_dataset(load_dataset(tmp_path / "data"))[1]
    assert 0 < first["dataset"]["num_images"] == len(held_out.labels) < 20
    assert [m["name"] for m in first["models"]] == ["attention_unet", "unet"]
    assert [m["training"]["source"] for m in first["models"]] == ["trained"] * 2
    assert [m["training"]["source"] for m in second["models"]] == ["cache"] * 2
    for row in first["models"]:
        dice = row["dice"]
        assert dice["ci_low"] <= dice["mean"] <= dice["ci_high"]
    assert [m["dice"] for m in second["models"]] == [
        m["dice"] for m in first["models"]
    ]
    gates = [row for row in first["maps"] if row["method"] == "attention"]
    assert gates, first["maps"]
