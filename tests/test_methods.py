"""Explanations as values, the method registry, LayerCAM and HiResCAM."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

import explain_attn
from explain_attn.cli import main
from explain_attn.explanations import (
    METHODS,
    Explainer,
    Explanation,
    explain,
    explanations_for,
    get_method,
    grad_cam,
    hires_cam,
    layer_cam,
)

WEIGHTS = np.array([[1.0, -2.0], [-0.5, 1.5]], np.float32)
SIZE = 4


@pytest.fixture(scope="module")
def quadratic_model():
    """A model whose gradients vary over space and can be written down.

    ``A = x`` (identity 1x1 convolution), ``z = W^T mean_ij(A * A)``, so
    ``dz_c / dA_k[i, j] = 2 A_k[i, j] W[k, c] / 16``.
    """
    inputs = keras.Input((SIZE, SIZE, 2))
    features = keras.layers.Conv2D(2, 1, use_bias=False, name="features")
    activations = features(inputs)
    squared = keras.layers.Multiply(name="square")([activations, activations])
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(squared)
    dense = keras.layers.Dense(2, name="logits")
    model = keras.Model(inputs, dense(pooled), name="quadratic")
    features.set_weights([np.eye(2, dtype=np.float32)[None, None]])
    dense.set_weights([WEIGHTS, np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def quadratic_images():
    return np.random.default_rng(9).random((5, SIZE, SIZE, 2), np.float32)


def normalise(maps):
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0)


def gradients(images, classes):
    """``(N, H, W, 2)`` dz_c/dA, written out."""
    return 2 * images * WEIGHTS[:, classes].T[:, None, None, :] / SIZE**2


CLASSES = np.array([0, 1, 1, 0, 1])


def test_layer_cam_equals_the_hand_computation(
    quadratic_model, quadratic_images
):
    positive = np.maximum(gradients(quadratic_images, CLASSES), 0)
    expected = normalise(np.maximum((positive * quadratic_images).sum(-1), 0))

    result = layer_cam(
        quadratic_model, quadratic_images, layer="features", class_index=CLASSES
    )

    np.testing.assert_allclose(result, expected, atol=1e-5)
    assert result.dtype == np.float32 and result.shape == (5, SIZE, SIZE)


def test_hires_cam_equals_the_hand_computation(
    quadratic_model, quadratic_images
):
    product = (gradients(quadratic_images, CLASSES) * quadratic_images).sum(-1)
    expected = normalise(np.maximum(product, 0))

    result = hires_cam(
        quadratic_model, quadratic_images, layer="features", class_index=CLASSES
    )

    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_new_cams_differ_from_grad_cam_where_gradients_vary(
    quadratic_model, quadratic_images
):
    def maps(function):
        return function(
            quadratic_model,
            quadratic_images,
            layer="features",
            class_index=CLASSES,
        )

    reference = maps(grad_cam)
    assert not np.allclose(maps(layer_cam), reference, atol=1e-3)
    assert not np.allclose(maps(hires_cam), reference, atol=1e-3)
    assert not np.allclose(maps(layer_cam), maps(hires_cam), atol=1e-3)


def test_public_functions_share_grad_cams_signature():
    import inspect

    expected = inspect.signature(grad_cam)
    for function in (layer_cam, hires_cam, explain_attn.grad_cam_plus_plus):
        assert inspect.signature(function) == expected
        assert function.__doc__


def test_registry_names_every_method():
    assert list(METHODS) == [
        "attention",
        "channel_weighted",
        "grad_cam",
        "grad_cam_plus_plus",
        "layer_cam",
        "hires_cam",
        "seg_grad_cam",
    ]
    assert get_method("layer_cam").title == "LayerCAM"
    with pytest.raises(ValueError, match="Unknown explanation method 'nope'"):
        get_method("nope")


def test_explanations_are_values(layered_model):
    first = Explanation(layered_model, "grad_cam", "conv", "base", "Base")
    same = Explanation(layered_model, "grad_cam", "conv", "base", "Base")
    assert first == same and hash(first) == hash(same)
    assert first.key == "base:grad_cam"
    assert first.label == "Base · Grad-CAM (conv)"
    spatial = Explanation(layered_model, "attention", "spatial")
    assert spatial.model_key == "layered" and spatial.key == "layered:spatial"
    with pytest.raises(ValueError, match="Unknown explanation method"):
        Explanation(layered_model, "gradcam", "conv")


def test_explain_matches_the_public_functions(layered_model, images):
    explanations = [
        *explanations_for(layered_model, "attention"),
        *explanations_for(layered_model, "layer_cam"),
    ]
    assert [e.layer for e in explanations] == ["spatial", "cbam", "channel"]

    maps = explain(explanations, images, batch_size=4)

    reference = explain_attn.attention_maps(layered_model, images)
    np.testing.assert_allclose(maps[explanations[0]], reference["spatial"])
    np.testing.assert_allclose(maps[explanations[1]], reference["cbam"])
    np.testing.assert_allclose(
        maps[explanations[2]],
        layer_cam(layered_model, images, layer="channel"),
        atol=1e-6,
    )


def test_explainer_resizes_and_takes_classes(layered_model, images):
    cam = explanations_for(layered_model, "hires_cam")
    explainer = Explainer(cam, resize_to="input")

    maps = explainer(images, class_index=np.zeros(len(images), int))

    assert maps[cam[0]].shape == (len(images), 12, 12)
    expected = hires_cam(
        layered_model, images, class_index=0, resize_to="input"
    )
    np.testing.assert_allclose(maps[cam[0]], expected, atol=1e-6)


def test_maps_command_with_methods_and_no_attention(tmp_path, report_inputs):
    output = tmp_path / "maps.npz"

    result = CliRunner().invoke(
        main,
        [
            "maps",
            str(report_inputs["baseline"]),
            "--data",
            str(report_inputs["data"]),
            "--method",
            "layer_cam",
            "--method",
            "hires_cam",
            "--output",
            str(output),
        ],
    )

    assert result.exit_code == 0, result.output
    stored = np.load(output)
    assert stored["layer_names"].size == 0
    baseline = explain_attn.load_model(report_inputs["baseline"])
    data = np.load(report_inputs["data"])
    np.testing.assert_allclose(
        stored["layer_cam"],
        layer_cam(baseline, data["images"], class_index=stored["predictions"]),
        atol=1e-6,
    )
    assert str(stored["hires_cam_layer"]) == str(stored["layer_cam_layer"])


def test_unknown_method_is_one_line(tmp_path, report_inputs):
    output = tmp_path / "maps.npz"
    result = CliRunner().invoke(
        main,
        [
            "maps",
            str(report_inputs["attention"]),
            "--data",
            str(report_inputs["data"]),
            "--method",
            "gradcam",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 2
    (line,) = result.stderr.strip().splitlines()
    assert "Unknown explanation method 'gradcam'" in line
    assert "layer_cam" in line
    assert not output.exists()


def test_report_with_a_new_method(tmp_path, report_command):
    output = tmp_path / "r.html"
    result = CliRunner().invoke(
        main,
        [
            *report_command,
            "--method",
            "hires_cam",
            "--method",
            "grad_cam",
            "--no-faithfulness",
            "--num-examples",
            "2",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(output.with_suffix(".json").read_text())
    assert data["reference"]["id"] == "baseline:hires_cam"
    ids = [row["id"] for row in data["explanations"]]
    assert "attention:hires_cam" in ids and "baseline:grad_cam" in ids
    assert "HiResCAM" in output.read_text()


def test_a_new_cam_method_is_one_registered_subclass(
    quadratic_model, quadratic_images
):
    """What the README promises: no edit of the report or the registry."""
    from explain_attn.explanations.cam import BaseCAM
    from explain_attn.explanations.methods import register_cam

    @register_cam
    class GradientOnly(BaseCAM):
        name = "gradient_only"
        title = "gradient only"

        def combine(self, activations, gradients):
            return tf_sum(gradients)

    try:
        (explanation,) = explanations_for(
            quadratic_model, "gradient_only", "features"
        )
        maps = explain([explanation], quadratic_images, class_index=CLASSES)
        expected = normalise(
            np.maximum(gradients(quadratic_images, CLASSES).sum(-1), 0)
        )
        np.testing.assert_allclose(maps[explanation], expected, atol=1e-5)
        assert explanation.label == "quadratic · gradient only (features)"
    finally:
        del METHODS["gradient_only"]


def tf_sum(values):
    import tensorflow as tf

    return tf.reduce_sum(values, axis=-1)


@pytest.mark.parametrize("methods", [("attention", "grad_cam"), ("grad_cam",)])
def test_explainer_predicts_with_the_maps(layered_model, images, methods):
    """`batch_with_predictions` (what `explain-attn maps` runs): the
    predicted classes of `predict_classes`, and the maps a plain
    `Explainer` computes for the classes ``classes_for`` chose."""
    from explain_attn.explanations import predict_classes

    explanations = [
        e for method in methods for e in explanations_for(layered_model, method)
    ]
    explainer = Explainer(explanations, predictions=True)
    predictions, maps = explainer.batch_with_predictions(
        images, lambda predicted: (predicted + 1) % 3
    )
    expected = predict_classes(layered_model, images)
    np.testing.assert_array_equal(predictions, expected)
    plain = Explainer(explanations).batch(
        images, ((expected + 1) % 3).astype(np.int32)
    )
    for explanation in explanations:
        np.testing.assert_allclose(maps[explanation], plain[explanation])
    with pytest.raises(ValueError, match="predictions=True"):
        Explainer(explanations).batch_with_predictions(images, abs)
