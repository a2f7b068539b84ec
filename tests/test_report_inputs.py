"""The report feeds each model its images as it was trained: scale, channels."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from skimage import io as skio

from explain_attn.cli import main
from explain_attn.report.models import in_unit_scale

SIZE = 16


def _model(channels, *, rescaling, name):
    """A gate model whose prediction depends on the input's scale."""
    inputs = keras.Input((SIZE, SIZE, channels))
    x = inputs
    if rescaling:
        x = keras.layers.Rescaling(1 / 255, name="rescale")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            name="conv")(x)  # fmt: skip
    gate = keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid",
                               name="gate")(x)  # fmt: skip
    x = keras.layers.Multiply(name="gated")([x, gate])
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(inputs, outputs, name=name)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("scale_data")
    rng = np.random.default_rng(0)
    for label in ("dark", "bright"):
        (root / "images" / label).mkdir(parents=True)
        (root / "masks" / label).mkdir(parents=True)
        for index in range(4):
            level = 40 if label == "dark" else 200
            image = rng.integers(level - 30, level + 30, (SIZE, SIZE, 3))
            path = root / "images" / label / f"{index}.png"
            skio.imsave(path, image.astype(np.uint8), check_contrast=False)
            mask = np.zeros((SIZE, SIZE), np.uint8)
            mask[4:12, 4:12] = 255
            skio.imsave(root / "masks" / label / f"{index}.png", mask,
                        check_contrast=False)  # fmt: skip
    return root


def _report(arguments, tmp_path):
    output = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        ["report", *map(str, arguments), "--no-faithfulness",
         "--num-examples", "2", "--output", str(output)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(output.with_suffix(".json").read_text())
    return result.output, data, output.read_text(encoding="utf-8")


def test_in_unit_scale_feeds_bytes_to_a_model_that_takes_bytes():
    keras.utils.set_random_seed(0)
    model = _model(3, rescaling=True, name="bytes")
    images = np.random.default_rng(1).random((4, SIZE, SIZE, 3))
    wrapped = in_unit_scale(model, "byte")
    np.testing.assert_allclose(
        wrapped.predict(images, verbose=0),
        model.predict(images * 255.0, verbose=0),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip
    assert in_unit_scale(model, "unit") is model
    symmetric = in_unit_scale(model, "symmetric")
    np.testing.assert_allclose(
        symmetric.predict(images, verbose=0),
        model.predict(images * 2.0 - 1.0, verbose=0),
        rtol=1e-5, atol=1e-6,
    )  # fmt: skip


def test_report_evaluates_a_rescaling_model_on_bytes(folder, tmp_path):
    keras.utils.set_random_seed(2)
    attention = _model(3, rescaling=True, name="bytes")
    baseline = _model(3, rescaling=False, name="plain")
    attention.save(tmp_path / "a.keras")
    baseline.save(tmp_path / "b.keras")
    printed, data, html = _report(
        ["--data", folder, "--attention-model", tmp_path / "a.keras",
         "--baseline-model", tmp_path / "b.keras"],
        tmp_path,
    )  # fmt: skip
    assert "as bytes" in printed or "0-255" in printed, printed
    from explain_attn.data import load_dataset

    test = load_dataset(folder)
    expected = attention.predict(test.images * 255.0, verbose=0).argmax(-1)
    accuracy = float(np.mean(expected == test.labels))
    row = data["models"][0]
    assert row["accuracy"]["accuracy"] == pytest.approx(accuracy)
    assert row["input"] and row["input"] in html
    assert data["models"][1]["input"] is None


def test_report_of_grayscale_models_on_rgb_images(folder, tmp_path):
    keras.utils.set_random_seed(3)
    _model(1, rescaling=False, name="gray_a").save(tmp_path / "a.keras")
    _model(1, rescaling=False, name="gray_b").save(tmp_path / "b.keras")
    printed, data, _ = _report(
        ["--data", folder, "--attention-model", tmp_path / "a.keras",
         "--baseline-model", tmp_path / "b.keras"],
        tmp_path,
    )  # fmt: skip
    assert len(data["explanations"]) >= 2
    assert data["models"][0]["accuracy"]["accuracy"] is not None


def test_models_with_different_channels_are_refused(folder, tmp_path):
    _model(1, rescaling=False, name="gray").save(tmp_path / "a.keras")
    _model(3, rescaling=False, name="rgb").save(tmp_path / "b.keras")
    output = tmp_path / "report.html"
    result = CliRunner().invoke(
        main,
        ["report", "--data", str(folder), "--attention-model",
         str(tmp_path / "a.keras"), "--baseline-model",
         str(tmp_path / "b.keras"), "--output", str(output)],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "different channels" in result.stderr
    assert not output.exists()
