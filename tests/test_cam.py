"""Grad-CAM and Grad-CAM++ against hand computations on known weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import explain_attn
from explain_attn.explanations import (
    default_cam_layer,
    grad_cam,
    grad_cam_plus_plus,
)

# features = identity 1x1 conv of the 2 input channels; logits = W^T gap(x).
WEIGHTS = np.array([[1.0, -2.0], [-0.5, 1.5]], np.float32)
SIZE = 4


@pytest.fixture(scope="module")
def linear_model():
    """A model whose Grad-CAM can be written down.

    ``A = x`` (identity 1x1 convolution), ``z = W^T mean_ij(A)``, softmax.
    So ``dz_c / dA_k[i, j] = W[k, c] / 16``: Grad-CAM weights are
    ``W[:, c] / 16`` and the map is ``relu(x @ W[:, c] / 16)`` normalised.
    """
    inputs = keras.Input((SIZE, SIZE, 2))
    features = keras.layers.Conv2D(2, 1, use_bias=False, name="features")
    x = features(inputs)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    dense = keras.layers.Dense(2, activation="softmax", name="predictions")
    outputs = dense(x)
    model = keras.Model(inputs, outputs, name="linear")
    features.set_weights([np.eye(2, dtype=np.float32)[None, None]])
    dense.set_weights([WEIGHTS, np.zeros(2, np.float32)])
    return model


@pytest.fixture(scope="module")
def linear_images():
    rng = np.random.default_rng(5)
    return rng.random((6, SIZE, SIZE, 2), dtype=np.float32)


def normalise(maps):
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    safe = np.where(span > 0, span, 1)
    return np.where(span > 0, (maps - low) / safe, 0)


def hand_grad_cam(images, classes):
    weights = WEIGHTS[:, classes].T / SIZE**2  # (N, 2)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", images, weights), 0)
    return normalise(cam)


def hand_grad_cam_plus_plus(images, classes):
    gradients = WEIGHTS[:, classes].T / SIZE**2  # constant per channel
    total = images.sum(axis=(1, 2))  # (N, 2)
    alpha = gradients**2 / (2 * gradients**2 + total * gradients**3)
    weights = SIZE**2 * alpha * np.maximum(gradients, 0)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", images, weights), 0)
    return normalise(cam)


def test_grad_cam_equals_the_hand_computation(linear_model, linear_images):
    classes = np.array([0, 1, 0, 1, 1, 0])

    result = grad_cam(linear_model, linear_images, class_index=classes)

    expected = hand_grad_cam(linear_images, classes)
    np.testing.assert_allclose(result, expected, atol=1e-5)
    assert result.dtype == np.float32
    assert result.shape == (6, SIZE, SIZE)


def test_grad_cam_uses_logits_not_softmax(linear_model, linear_images):
    classes = np.zeros(6, int)
    result = grad_cam(linear_model, linear_images, class_index=classes)

    # The gradient of the probability instead: p_c (W[:, c] - W p) / 16.
    probabilities = linear_model(linear_images).numpy()
    weights = (WEIGHTS[:, 0][None] - probabilities @ WEIGHTS.T) / SIZE**2
    softmax_cam = normalise(
        np.maximum(np.einsum("nhwk,nk->nhw", linear_images, weights), 0)
    )
    assert not np.allclose(result, softmax_cam, atol=1e-2)
    # And the model still ends in a softmax: it was not modified.
    config = linear_model.get_layer("predictions").get_config()
    assert config["activation"] == "softmax"


def test_class_index_forms(linear_model, linear_images):
    logits = linear_images.mean(axis=(1, 2)) @ WEIGHTS
    predicted = logits.argmax(axis=1)

    default = grad_cam(linear_model, linear_images)
    as_int = grad_cam(linear_model, linear_images, class_index=1)

    np.testing.assert_allclose(
        default, hand_grad_cam(linear_images, predicted), atol=1e-5
    )
    np.testing.assert_allclose(
        as_int, hand_grad_cam(linear_images, np.ones(6, int)), atol=1e-5
    )
    with pytest.raises(ValueError, match=r"lie in \[0, 2\)"):
        grad_cam(linear_model, linear_images, class_index=2)
    with pytest.raises(ValueError, match="one entry per image"):
        grad_cam(linear_model, linear_images, class_index=[0, 1])
    with pytest.raises(TypeError, match="class_index"):
        grad_cam(linear_model, linear_images, class_index=0.5)


def test_all_zero_map_stays_zero(linear_model):
    images = np.zeros((2, SIZE, SIZE, 2), np.float32)
    result = grad_cam(linear_model, images, class_index=0)
    assert np.all(np.isfinite(result))
    np.testing.assert_array_equal(result, 0)


def test_grad_cam_plus_plus_equals_its_formula(linear_model, linear_images):
    classes = np.array([1, 0, 1, 0, 0, 1])
    result = grad_cam_plus_plus(
        linear_model, linear_images, class_index=classes
    )
    np.testing.assert_allclose(
        result, hand_grad_cam_plus_plus(linear_images, classes), atol=1e-5
    )


@pytest.mark.parametrize("method", [grad_cam, grad_cam_plus_plus])
def test_every_method_shares_the_plumbing(method, linear_model, linear_images):
    result = method(linear_model, linear_images, resize_to=(8, 8))
    batched = method(linear_model, linear_images, batch_size=4)

    assert result.shape == (6, 8, 8)
    assert 0 <= result.min() and result.max() <= 1
    np.testing.assert_allclose(batched.max(axis=(1, 2)), 1, atol=1e-6)


@pytest.mark.parametrize(
    ("architecture", "layer"),
    [
        ("baseline", "conv2"),
        ("residual", "res_add"),
        ("small_attention", "block3_attention"),
    ],
)
def test_default_layer_is_the_last_4d_layer(architecture, layer):
    model = explain_attn.build_model(architecture, num_classes=3)
    assert default_cam_layer(model) == layer


def test_nested_model_against_a_manual_tape(nested_gate_model, images):
    model = nested_gate_model
    inner = model.get_layer("inner")

    result = grad_cam(model, images, layer="inner/features", class_index=2)

    x = tf.constant(images)
    stem = model.get_layer("stem")(x)
    with tf.GradientTape() as tape:
        features = inner.get_layer("features")(stem)
        tape.watch(features)
        gated = features * inner.get_layer("gate")(features)
        logits = model.get_layer("logits")(tf.reduce_mean(gated, axis=(1, 2)))
        score = tf.reduce_sum(logits[:, 2])
    gradients = tape.gradient(score, features).numpy()
    weights = gradients.mean(axis=(1, 2))
    expected = normalise(
        np.maximum(np.einsum("nhwk,nk->nhw", features.numpy(), weights), 0)
    )
    np.testing.assert_allclose(result, expected, atol=1e-5)


def test_model_without_4d_layer_is_refused():
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs), name="flat")
    with pytest.raises(ValueError, match="no layer with a 4-D output"):
        grad_cam(model, np.zeros((1, 6), np.float32))


def test_model_is_not_modified(layered_model, images):
    weights = [w.copy() for w in layered_model.get_weights()]
    outputs = layered_model(images).numpy()

    grad_cam(layered_model, images, layer="conv")
    grad_cam_plus_plus(layered_model, images, layer="spatial")

    for old, new in zip(weights, layered_model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    np.testing.assert_allclose(layered_model(images).numpy(), outputs)
