"""Inputs as the model was trained: value scales, gray models, HxW sizes."""

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from explain_attn import build_model, save_model
from explain_attn.cli import main
from explain_attn.cli.common import ImageSize
from explain_attn.data import load_dataset, open_source
from explain_attn.data.images import match_channels, to_unit_float
from explain_attn.explanations import attention_maps
from explain_attn.explanations.inputs import (
    resolve_input_scale,
    to_model_scale,
)
from explain_attn.explanations.predict import predict_classes


@pytest.fixture(scope="module")
def rgb_model():
    keras.utils.set_random_seed(2)
    return build_model("small_attention", input_shape=(8, 8, 3), num_classes=2)


@pytest.fixture(scope="module")
def gray_model_path(tmp_path_factory):
    keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("gray") / "gray.keras"
    save_model(
        build_model("small_attention", input_shape=(8, 12, 1), num_classes=2),
        path,
    )
    return path


def test_to_model_scale_by_hand():
    images = np.array([0.0, 0.5, 1.0], np.float32)
    np.testing.assert_array_equal(to_model_scale(images, "unit"), images)
    np.testing.assert_array_equal(
        to_model_scale(images, "byte"), [0.0, 127.5, 255.0]
    )
    np.testing.assert_array_equal(
        to_model_scale(images, "symmetric"), [-1.0, 0.0, 1.0]
    )


def test_float_scales_are_read_back_to_unit():
    values = np.array([[0.0, 51.0], [127.5, 255.0]], np.float64)
    np.testing.assert_allclose(
        to_unit_float(values, "x", batched=False, scale="byte")[..., 0],
        [[0.0, 0.2], [0.5, 1.0]],
        rtol=1e-6,
    )
    symmetric = np.array([[-1.0, 0.0], [0.5, 1.0]])
    np.testing.assert_allclose(
        to_unit_float(symmetric, "x", batched=False, scale="symmetric")[..., 0],
        [[0.0, 0.5], [0.75, 1.0]],
    )
    # Integers are read by their dtype whatever the scale.
    np.testing.assert_array_equal(
        to_unit_float(
            np.array([[255]], np.uint8), "x", batched=False, scale="symmetric"
        ),
        [[[1.0]]],
    )


def test_resolve_input_scale_states_the_assumption(rgb_model):
    inferred = resolve_input_scale(rgb_model)
    assert inferred.scale == "unit" and not inferred.chosen
    assert "--input-scale byte or symmetric" in inferred.note
    chosen = resolve_input_scale(rgb_model, "symmetric")
    assert chosen.scale == "symmetric" and chosen.chosen
    with pytest.raises(ValueError, match="Unknown input scale"):
        resolve_input_scale(rgb_model, "bytes")


def test_maps_with_input_scale_equal_maps_of_scaled_arrays(rgb_model):
    images = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    for scale, scaled in (
        ("byte", images * 255),
        ("symmetric", images * 2 - 1),
    ):
        got = attention_maps(rgb_model, images, input_scale=scale)
        expected = attention_maps(rgb_model, scaled)
        for path in expected:
            np.testing.assert_allclose(got[path], expected[path], atol=1e-5)
    twice = predict_classes(
        rgb_model, images, preprocess=lambda batch: batch * 2.0
    )
    np.testing.assert_array_equal(twice, predict_classes(rgb_model, images * 2))


def test_float_npz_in_bytes_is_accepted_with_byte(tmp_path):
    rng = np.random.default_rng(4)
    pixels = rng.integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    np.savez(
        tmp_path / "bytes.npz",
        images=pixels.astype(np.float32),
        labels=[0, 1, 0, 1],
    )
    np.savez(tmp_path / "uint8.npz", images=pixels, labels=[0, 1, 0, 1])
    as_float = load_dataset(tmp_path / "bytes.npz", input_scale="byte")
    as_uint8 = load_dataset(tmp_path / "uint8.npz")
    np.testing.assert_allclose(as_float.images, as_uint8.images, atol=1e-7)
    with pytest.raises(ValueError, match="input_scale='byte'"):
        load_dataset(tmp_path / "bytes.npz")


def test_channels_made_for_the_model():
    rgb = np.random.default_rng(5).random((2, 3, 3, 3), dtype=np.float32)
    gray, note = match_channels(rgb, 1, "x")
    expected = rgb @ np.array([0.2125, 0.7154, 0.0721], np.float32)
    np.testing.assert_allclose(gray[..., 0], expected, atol=1e-6)
    assert "rgb2gray" in note
    repeated, note = match_channels(gray, 3, "x")
    np.testing.assert_array_equal(repeated, np.repeat(gray, 3, axis=-1))
    assert "repeated" in note
    same, note = match_channels(rgb, 3, "x")
    assert same is rgb and note == ""
    with pytest.raises(ValueError, match="takes 4 channel"):
        match_channels(rgb, 4, "x")


def test_gray_arrays_load_with_one_channel(tmp_path):
    pixels = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4)
    for name, images in (("flat", pixels), ("one", pixels[..., None])):
        np.savez(tmp_path / f"{name}.npz", images=images, labels=[0, 1])
        dataset = load_dataset(tmp_path / f"{name}.npz", channels=1)
        assert dataset.image_shape == (4, 4, 1)
        np.testing.assert_array_equal(
            dataset.images[..., 0], pixels / np.float32(255)
        )


def test_image_size_parses_square_and_height_by_width():
    size = ImageSize()
    assert size.convert("224", None, None) == 224
    assert size.convert("192x256", None, None) == (192, 256)
    assert size.convert(" 8X12 ", None, None) == (8, 12)


def test_gray_model_on_rgb_pngs_not_square(gray_model_path, tmp_path_factory):
    """RGB PNGs become gray by rgb2gray for a 1-channel, 8x12 model."""
    root = tmp_path_factory.mktemp("rgb_pngs")
    rng = np.random.default_rng(6)
    for index in range(4):
        folder = root / "images" / "ab"[index % 2]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(
            folder / f"{index}.png"
        )
    source = open_source(root, image_size=(8, 12), channels=1)
    assert source.image_shape == (8, 12, 1)
    output = root.parent / "gray_maps.npz"
    result = CliRunner().invoke(
        main,
        [
            "maps",
            str(gray_model_path),
            "--data",
            str(root),
            "--image-size",
            "8x12",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "4 image(s)" in result.output and "RGB to gray" in result.output
    stored = np.load(output)
    model = keras.models.load_model(gray_model_path)
    images = load_dataset(root, image_size=(8, 12), channels=1).images
    np.testing.assert_array_equal(
        stored["predictions"], predict_classes(model, images)
    )
