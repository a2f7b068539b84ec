"""Attention found by structure: gates, their ranges, maps of every kind."""

import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers, ops

from explain_attn.attention.discovery import discover_modules
from explain_attn.explanations.attention import (
    attention_maps,
    channel_attention_weights,
)
from explain_attn.explanations.lookup import (
    attention_layer_names,
    cam_candidates,
    channel_module_names,
)
from explain_attn.models.preprocessing import describe_input
from explain_attn.report.channels import channel_entropy, class_similarity

sys.path.insert(0, str(Path(__file__).parent))
import zoo_models  # noqa: E402

RNG = np.random.default_rng(3)


def _images(model, count=3):
    shape = tuple(model.inputs[0].shape[1:])
    return RNG.random((count, *shape), dtype=np.float32)


def _single(model):
    (module,) = discover_modules(model)
    return module


def _gated(gate_of):
    """A model ``x * gate_of(logits)`` with a (8, 8, 1) spatial gate."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="features")(inputs)
    logits = layers.Conv2D(1, 3, padding="same", name="logits")(x)
    gated = x * gate_of(logits)
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(gated))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    ("gate_of", "expected"),
    [
        (ops.sigmoid, "(0, 1)"),
        (ops.hard_sigmoid, "[0, 1]"),
        (lambda t: layers.ReLU(6.0)(t + 3.0) * (1.0 / 6.0), "[0, 1]"),
        (lambda t: 1.0 + ops.sigmoid(t), "(1, 2)"),
        (lambda t: 1.0 - ops.sigmoid(t), "(0, 1)"),
    ],
)
def test_gate_ranges_from_ops(gate_of, expected):
    module = _single(_gated(gate_of))
    assert module.kind.name == "gate"
    assert module.shape == (8, 8, 1)
    assert str(module.value_range) == expected


def test_unbounded_or_wide_gates_are_not_attention():
    for gate_of in (ops.relu6, ops.tanh, lambda t: t):
        assert discover_modules(_gated(gate_of)) == []


def test_activation_functions_are_not_attention():
    """x * sigmoid(x) (swish) and x * hard_sigmoid(x) at 1x1: no module."""
    inputs = keras.Input((1, 1, 4))
    x = layers.Conv2D(4, 1)(inputs)
    x = x * ops.sigmoid(x)
    x = x * (layers.ReLU(6.0)(x + 3.0) * (1.0 / 6.0))
    model = keras.Model(inputs, layers.Flatten()(x))
    assert discover_modules(model) == []


def test_spatial_gate_map_is_the_gate_output():
    model = _gated(ops.sigmoid)
    images = _images(model)
    logits = keras.Model(model.input, model.get_layer("logits").output)
    expected = 1.0 / (1.0 + np.exp(-logits(images).numpy()[..., 0]))
    (path,) = attention_layer_names(model)
    maps = attention_maps(model, images)[path]
    np.testing.assert_allclose(maps, expected, rtol=1e-5, atol=1e-6)


def test_channel_gate_weights_equal_the_squeeze_and_excitation_output():
    inputs = keras.Input((6, 6, 3))
    x = layers.Conv2D(5, 3, padding="same")(inputs)
    squeezed = layers.GlobalAveragePooling2D()(x)
    squeezed = layers.Reshape((1, 1, 5))(squeezed)
    hidden = layers.Dense(2, activation="relu")(squeezed)
    gate = layers.Dense(5, activation="sigmoid", name="excite")(hidden)
    x = layers.Multiply(name="scale")([x, gate])
    model = keras.Model(inputs, layers.Flatten()(x))
    module = _single(model)
    assert (module.path, module.kind.name) == ("excite", "channel_gate")
    assert (module.shape, module.applied_at) == ((1, 1, 5), "scale")
    assert attention_layer_names(model) == []
    assert channel_module_names(model) == ["excite"]
    images = _images(model)
    expected = keras.Model(inputs, gate)(images).numpy()[:, 0, 0, :]
    weights = channel_attention_weights(model, images, "excite")
    np.testing.assert_allclose(weights, expected, rtol=1e-6)
    with pytest.raises(ValueError, match="channel gate"):
        attention_maps(model, images, layers="excite")


def test_axis_map_is_the_outer_product_of_the_gates():
    model = zoo_models.coordinate_attention(size=8)
    module = _single(model)
    assert module.kind.name == "axis" and module.shape == (8, 8, 1)
    images = _images(model)
    gates = keras.Model(
        model.input,
        [model.get_layer("ca_h").output, model.get_layer("ca_w").output],
    )(images)
    along_h, along_w = (np.asarray(g, np.float64) for g in gates)
    # (N, H, 1, C) times (N, 1, W, C).
    expected = (along_h * along_w).mean(axis=-1)
    maps = attention_maps(model, images)[module.path]
    np.testing.assert_allclose(maps, expected, rtol=1e-5)


def test_multi_head_attention_map_is_the_attention_received():
    model = zoo_models.hybrid_mha(size=8)
    module = _single(model)
    assert (module.kind.name, module.shape) == ("mha", (4, 4, 1))
    images = _images(model)
    tokens = keras.Model(model.input, model.get_layer("tokens").output)(images)
    _, scores = model.get_layer("mha")(
        tokens, tokens, return_attention_scores=True
    )
    expected = np.asarray(scores).mean(axis=(1, 2)).reshape(-1, 4, 4)
    maps = attention_maps(model, images)["mha"]
    np.testing.assert_allclose(maps, expected, rtol=1e-5)
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-5)


def test_grad_cam_candidates_are_at_least_two_by_two():
    inputs = keras.Input((4, 4, 3))
    x = layers.Conv2D(4, 3, padding="same", name="big")(inputs)
    x = layers.Conv2D(4, 4, name="tiny")(x)
    model = keras.Model(inputs, layers.Flatten()(x))
    assert cam_candidates(model) == ["big"]
    with pytest.raises(ValueError, match="1×1 output is not a map"):
        attention_maps(model, _images(model), layers="tiny")


@pytest.mark.parametrize(
    ("preprocessing", "scale"),
    [
        ([layers.Rescaling(1 / 255)], "byte"),
        ([layers.Rescaling(1 / 127.5, offset=-1)], "byte"),
        ([layers.Rescaling(2.0, offset=-1)], "unit"),
        ([layers.Normalization(mean=[0.45] * 3, variance=[0.05] * 3)], "unit"),
        (
            [layers.Normalization(mean=[115.0] * 3, variance=[3000.0] * 3)],
            "byte",
        ),
        ([], None),
    ],
)
def test_describe_input_reads_the_models_preprocessing(preprocessing, scale):
    inputs = keras.Input((6, 5, 1))
    x = inputs
    for layer in preprocessing:
        x = (
            layer(x)
            if not isinstance(layer, layers.Normalization)
            else (
                layers.Normalization(
                    mean=layer.input_mean[:1], variance=layer.input_variance[:1]
                )(x)
            )
        )
    model = keras.Model(inputs, layers.Conv2D(2, 3)(x))
    expectation = describe_input(model)
    assert (expectation.height, expectation.width) == (6, 5)
    assert (expectation.channels, expectation.scale) == (1, scale)
    if scale is None:
        assert "pass --input-scale" in expectation.note
    else:
        assert f"expects {scale} values" in expectation.note


def test_channel_statistics_by_hand():
    weights = np.array(
        [[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0]]
    )
    entropy = channel_entropy(weights)
    np.testing.assert_allclose(entropy[:2], [1.0, 0.0])
    assert np.isnan(entropy[2])
    # Two classes: cos([1, 0], [1, 1]) = 1 / sqrt(2).
    assert class_similarity([[1.0, 0.0], [1.0, 1.0]]) == pytest.approx(
        1 / np.sqrt(2)
    )
    assert np.isnan(class_similarity([[1.0, 0.0]]))
