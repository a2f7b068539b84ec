"""Grad-CAM and Grad-CAM++ against hand computations on known weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import explain_attn
from explain_attn.explanations import (
    METHODS,
    default_cam_layer,
    explain,
    explanations_for,
    get_method,
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


@pytest.fixture(scope="module")
def every_method_model():
    """conv -> squeeze-and-excitation (plain Keras) -> spatial attention ->
    gap -> softmax: a model that every registered method can explain."""
    keras.utils.set_random_seed(3)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    squeeze = keras.layers.GlobalAveragePooling2D(keepdims=True)(x)
    gate = keras.layers.Dense(4, activation="sigmoid", name="se_gate")(squeeze)
    x = keras.layers.Multiply(name="se_apply")([x, gate])
    x = explain_attn.SpatialAttention(3, name="spatial")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = keras.layers.Dense(3, activation="softmax", name="scores")(x)
    return keras.Model(inputs, outputs, name="every_method")


@pytest.fixture(scope="module")
def segmentation_model():
    """conv -> pool -> conv -> up-sampling -> per-pixel logits (3 classes),
    for the methods that explain segmentation models."""
    keras.utils.set_random_seed(5)
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", name="encoder")(inputs)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", name="decoder")(x)
    x = keras.layers.UpSampling2D(name="up")(x)
    outputs = keras.layers.Conv2D(3, 1, name="logits")(x)
    return keras.Model(inputs, outputs, name="segmentation")


def _explanations_of_a_model_it_explains(name, models):
    """The method's default explanations of the first model it accepts."""
    for model in models:
        try:
            return explanations_for(model, name)
        except ValueError:
            continue
    raise AssertionError(f"{name} explains none of the test models")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_registered_method_shares_the_plumbing(
    name, every_method_model, segmentation_model
):
    """Batching, resizing and classes work alike for every method: a
    method is tested here the moment it is registered."""
    images = np.random.default_rng(4).random((7, 12, 12, 3), np.float32)
    explanations = _explanations_of_a_model_it_explains(
        name, [every_method_model, segmentation_model]
    )
    assert explanations
    whole = explain(explanations, images, resize_to=(8, 8), batch_size=10)
    batched = explain(explanations, images, resize_to=(8, 8), batch_size=3)
    native = explain(explanations, images, class_index=0, batch_size=4)
    for explanation in explanations:
        maps = whole[explanation]
        assert maps.shape == (len(images), 8, 8) and maps.dtype == np.float32
        assert np.isfinite(maps).all()
        np.testing.assert_allclose(batched[explanation], maps, atol=1e-5)
        assert native[explanation].shape[0] == len(images)
        if get_method(name).uses_class:
            # Each map is scaled to [0, 1] (all zero when nothing is
            # positive), at its own resolution and after resizing.
            assert 0 <= maps.min() and maps.max() <= 1
            peaks = native[explanation].max(axis=(1, 2))
            assert np.all(np.isclose(peaks, 1, atol=1e-6) | (peaks == 0))


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
