"""Attention maps by name: values against the formulas, look-up, no mutation."""

import keras
import numpy as np
import pytest
from conftest import (
    IMAGE_SHAPE,
    numpy_channel_weights,
    numpy_spatial_map,
)

import explain_attn
from explain_attn.explanations import (
    attention_layer_names,
    attention_maps,
    channel_attention_weights,
    describe_layers,
    resolve_layers,
)
from explain_attn.graph import model_state


def layer_input(model, name, images):
    """The input of a top-level layer, through Keras' own sub-model."""
    return keras.Model(model.input, model.get_layer(name).input)(images).numpy()


def test_our_layers_give_the_attention_weights(layered_model, images):
    result = attention_maps(layered_model, images)

    assert list(result) == ["spatial", "cbam"]
    spatial = layered_model.get_layer("spatial")
    expected = numpy_spatial_map(
        layer_input(layered_model, "spatial", images), spatial
    )
    np.testing.assert_allclose(result["spatial"], expected, atol=1e-5)
    assert result["spatial"].dtype == np.float32
    assert result["spatial"].shape == (10, 12, 12)

    cbam = layered_model.get_layer("cbam")
    cbam_input = layer_input(layered_model, "cbam", images)
    refined = (
        cbam_input
        * numpy_channel_weights(cbam_input, cbam.channel_attention)[
            :, None, None, :
        ]
    )
    expected = numpy_spatial_map(refined, cbam.spatial_attention)
    np.testing.assert_allclose(result["cbam"], expected, atol=1e-5)


def test_plain_keras_gate_in_a_nested_model(nested_gate_model, images):
    assert attention_layer_names(nested_gate_model) == ["inner/gate"]

    result = attention_maps(nested_gate_model, images)

    inner = nested_gate_model.get_layer("inner")
    stem = keras.Model(
        nested_gate_model.input, nested_gate_model.get_layer("stem").output
    )(images)
    gate = keras.Model(inner.input, inner.get_layer("gate").output)(stem)
    np.testing.assert_allclose(
        result["inner/gate"], gate.numpy()[..., 0], atol=1e-6
    )


def test_residual_model_gives_weights_not_the_conv_output():
    model = explain_attn.build_model("residual", num_classes=3)
    images = np.random.default_rng(3).random((4, 32, 32, 3), np.float32)

    result = attention_maps(model, images)

    assert list(result) == ["res_attention"]
    conv_output = layer_input(model, "res_attention", images)
    expected = numpy_spatial_map(conv_output, model.get_layer("res_attention"))
    np.testing.assert_allclose(result["res_attention"], expected, atol=1e-5)
    # What the tutorial's model.layers[2] returned: a 64-channel conv output.
    assert model.layers[2].name == "res_conv"
    assert not np.allclose(result["res_attention"], conv_output.mean(-1))


def test_activation_maps_and_single_channel_outputs(nested_gate_model, images):
    result = attention_maps(
        nested_gate_model, images, layers=["stem", "inner/features"]
    )

    stem = keras.Model(
        nested_gate_model.input, nested_gate_model.get_layer("stem").output
    )(images).numpy()
    np.testing.assert_allclose(result["stem"], stem.mean(-1), atol=1e-6)
    assert result["inner/features"].shape == (10, 12, 12)


def test_sequential_model(images):
    keras.utils.set_random_seed(4)
    model = keras.Sequential(
        [
            keras.Input(IMAGE_SHAPE),
            keras.layers.Conv2D(4, 3, padding="same", name="conv"),
            explain_attn.SpatialAttention(3, name="attention"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(2, name="logits"),
        ],
        name="sequential_model",
    )

    result = attention_maps(model, images)

    features = keras.Model(model.inputs[0], model.get_layer("conv").output)(
        images
    ).numpy()
    expected = numpy_spatial_map(features, model.get_layer("attention"))
    np.testing.assert_allclose(result["attention"], expected, atol=1e-5)


def test_unbuilt_and_subclassed_models_are_refused(images):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 3)

        def call(self, inputs):
            return self.conv(inputs)

    # Never called: its input shape is unknown, nothing to trace on.
    model = Subclassed()
    with pytest.raises(
        ValueError, match="subclassed keras.Model.*never called"
    ):
        attention_maps(model, images, layers=["conv"])
    unbuilt = keras.Sequential([keras.layers.Conv2D(2, 3)])
    with pytest.raises(ValueError, match="not built"):
        attention_layer_names(unbuilt)


def test_channel_attention_has_no_spatial_map(layered_model, images):
    with pytest.raises(ValueError, match="channel_attention_weights"):
        attention_maps(layered_model, images, layers=["channel"])

    weights = channel_attention_weights(layered_model, images, "channel")

    features = layer_input(layered_model, "channel", images)
    expected = numpy_channel_weights(
        features, layered_model.get_layer("channel")
    )
    np.testing.assert_allclose(weights, expected, atol=1e-6)
    assert weights.shape == (10, 4)
    cbam_weights = channel_attention_weights(layered_model, images, "cbam")
    assert cbam_weights.shape == (10, 4)


def test_look_up_by_name_path_and_glob(nested_gate_model):
    model = nested_gate_model
    assert resolve_layers(model, "gate") == ["inner/gate"]
    assert resolve_layers(model, ["inner/gate"]) == ["inner/gate"]
    assert resolve_layers(model, "inner/*") == [
        "inner/features",
        "inner/gate",
        "inner/apply",
    ]
    # Duplicates collapse and the graph's order is kept.
    assert resolve_layers(model, ["*gate", "stem", "gate"]) == [
        "stem",
        "inner/gate",
    ]


def test_unknown_name_lists_attention_layers_and_closest(nested_gate_model):
    with pytest.raises(ValueError) as error:
        resolve_layers(nested_gate_model, ["gaet"])
    message = str(error.value)
    assert "No layer named 'gaet' in model 'outer'" in message
    assert "Attention layers: inner/gate." in message
    assert "Closest names: gate" in message
    with pytest.raises(ValueError, match="matches no 4-D layer"):
        resolve_layers(nested_gate_model, ["*nothing*"])


def test_model_without_attention_says_so():
    model = explain_attn.build_model("baseline", num_classes=3)
    assert attention_layer_names(model) == []
    with pytest.raises(ValueError, match="has no attention layer"):
        attention_maps(model, np.zeros((1, 32, 32, 3), np.float32))


def test_shape_mismatch_names_both_shapes(layered_model):
    with pytest.raises(ValueError, match=r"\(8, 8, 3\).*\(12, 12, 3\)"):
        attention_maps(layered_model, np.zeros((2, 8, 8, 3), np.float32))


def test_resize_and_batches(layered_model, images):
    full = attention_maps(layered_model, images, layers="spatial")["spatial"]
    small_batches = attention_maps(
        layered_model, images, layers="spatial", batch_size=3
    )["spatial"]
    resized = attention_maps(
        layered_model, images, layers="spatial", resize_to=(24, 24)
    )["spatial"]

    np.testing.assert_allclose(small_batches, full, atol=1e-6)
    assert resized.shape == (10, 24, 24)
    # Bilinear upsampling keeps the values inside the original range.
    assert resized.min() >= full.min() - 1e-6
    assert resized.max() <= full.max() + 1e-6
    with pytest.raises(ValueError, match="resize_to"):
        attention_maps(layered_model, images, resize_to="double")


def test_extractor_is_built_once_per_layer_set(layered_model, images):
    state = model_state(layered_model)
    first = attention_maps(state, images, layers=["spatial", "cbam"])
    cache = state.functions
    before = dict(cache)
    again = attention_maps(state, images[:3], layers=["spatial", "cbam"])
    assert dict(cache) == before
    np.testing.assert_allclose(again["cbam"], first["cbam"][:3], atol=1e-6)
    # A model, not its state: a state of its own, the given one untouched.
    attention_maps(layered_model, images[:3], layers=["spatial"])
    assert dict(cache) == before


def test_describe_layers(layered_model):
    rows = {row["path"]: row for row in describe_layers(layered_model)}
    assert rows["spatial"]["kind"] == "attention"
    assert rows["channel"]["kind"] == "channel"
    assert rows["conv"]["kind"] == "activation"
    assert rows["conv"]["output_shape"] == (None, 12, 12, 4)
    assert "gap" not in rows


def test_model_and_images_are_not_modified(nested_gate_model, images):
    model = nested_gate_model
    weights = [w.copy() for w in model.get_weights()]
    configs = [layer.get_config() for layer in model.layers]
    layer_count = len(model.layers)
    before = images.copy()
    outputs = model(images).numpy()

    attention_maps(model, images, layers=["gate", "stem"])
    channel_free = attention_maps(model, images)
    assert channel_free["inner/gate"].shape == (10, 12, 12)

    for old, new in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(old, new)
    assert [layer.get_config() for layer in model.layers] == configs
    assert len(model.layers) == layer_count
    np.testing.assert_array_equal(images, before)
    np.testing.assert_allclose(model(images).numpy(), outputs, atol=1e-7)
