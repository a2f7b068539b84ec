"""Tests of the attention layers against an independent NumPy route."""

import re

import keras
import numpy as np
import pytest

from explain_attn.attention.layers import (
    CBAM,
    AggregatedAttention,
    ChannelAttention,
    SpatialAttention,
)

# Height differs from width so that a transposed map cannot pass.
INPUT_SHAPE = (2, 5, 7, 6)

LAYER_FACTORIES = {
    "spatial": lambda: SpatialAttention(kernel_size=3, name="spatial"),
    "aggregated": lambda: AggregatedAttention(kernel_size=3, name="agg"),
    "channel": lambda: ChannelAttention(reduction_ratio=2, name="channel"),
    "cbam": lambda: CBAM(reduction_ratio=2, kernel_size=3, name="cbam"),
}


def _inputs(shape=INPUT_SHAPE, seed=0):
    # Signed values, so that mean and max differ and ReLU cuts some units.
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape).astype("float32")


def _randomize(layer, seed=1):
    """Gives every weight (biases included) random, non-zero values."""
    rng = np.random.default_rng(seed)
    layer.set_weights(
        [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
    )


def _built(factory, shape=INPUT_SHAPE):
    layer = factory()
    layer.build(shape)
    _randomize(layer)
    return layer


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def _sigmoid(values):
    return 1.0 / (1.0 + np.exp(-values))


def _correlate_same(features, kernel, bias):
    """2-D cross-correlation with "same" zero padding, one output channel.

    ``features`` is ``(N, H, W, C)``, ``kernel`` ``(k, k, C, 1)`` with odd
    ``k``; written as the explicit padded sum of the definition.
    """
    size = kernel.shape[0]
    pad = size // 2
    batch, height, width, _ = features.shape
    padded = np.pad(features, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    out = np.full((batch, height, width), float(bias[0]))
    for row in range(size):
        for col in range(size):
            window = padded[:, row : row + height, col : col + width, :]
            out += window @ kernel[row, col, :, 0]
    return out[..., None]


def _reference_spatial_map(x, kernel, bias):
    x = x.astype("float64")
    pooled = np.concatenate(
        [x.mean(axis=-1, keepdims=True), x.max(axis=-1, keepdims=True)],
        axis=-1,
    )
    return _sigmoid(_correlate_same(pooled, kernel, bias))


def _reference_channel_map(x, weights):
    x = x.astype("float64")

    def perceptron(vectors):
        hidden = np.maximum(
            vectors @ weights["hidden_kernel"] + weights["hidden_bias"], 0.0
        )
        return hidden @ weights["output_kernel"] + weights["output_bias"]

    scores = perceptron(x.mean(axis=(1, 2))) + perceptron(x.max(axis=(1, 2)))
    return _sigmoid(scores)[:, None, None, :]


def _spatial_weights(layer):
    return _numpy(layer.conv.kernel), _numpy(layer.conv.bias)


def _channel_weights(layer):
    return {w.name: _numpy(w) for w in layer.weights}


# --- Values against the formula --------------------------------------------


@pytest.mark.parametrize("kernel_size", [1, 3, 7])
def test_spatial_attention_matches_numpy(kernel_size):
    layer = _built(lambda: SpatialAttention(kernel_size=kernel_size))
    x = _inputs()
    kernel, bias = _spatial_weights(layer)
    assert kernel.shape == (kernel_size, kernel_size, 2, 1)
    assert bias.shape == (1,)

    expected_map = _reference_spatial_map(x, kernel, bias)
    attention_map = _numpy(layer.attention_map(x))

    assert attention_map.shape == (2, 5, 7, 1)
    np.testing.assert_allclose(
        attention_map, expected_map, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        _numpy(layer(x)), x * expected_map, rtol=1e-5, atol=1e-6
    )


def test_spatial_attention_concatenates_mean_then_max():
    # Only the mean channel has weight: the map must ignore the maximum.
    layer = SpatialAttention(kernel_size=1)
    layer.build(INPUT_SHAPE)
    layer.set_weights(
        [np.array([2.0, 0.0], "float32").reshape(1, 1, 2, 1), np.zeros(1)]
    )
    x = _inputs()
    expected = _sigmoid(2.0 * x.astype("float64").mean(axis=-1))[..., None]
    np.testing.assert_allclose(
        _numpy(layer.attention_map(x)), expected, rtol=1e-6
    )


def test_spatial_attention_map_lies_in_open_unit_interval():
    layer = _built(lambda: SpatialAttention(kernel_size=3))
    attention_map = _numpy(layer.attention_map(_inputs()))
    assert attention_map.min() > 0.0
    assert attention_map.max() < 1.0


@pytest.mark.parametrize(
    ("channels", "reduction_ratio", "hidden"),
    [(6, 2, 3), (8, 8, 1), (3, 8, 1)],  # The last floors 3 // 8 up to 1.
)
def test_channel_attention_matches_numpy(channels, reduction_ratio, hidden):
    shape = (2, 5, 7, channels)
    layer = _built(lambda: ChannelAttention(reduction_ratio), shape)
    x = _inputs(shape)
    weights = _channel_weights(layer)
    assert weights["hidden_kernel"].shape == (channels, hidden)
    assert weights["output_kernel"].shape == (hidden, channels)

    expected_map = _reference_channel_map(x, weights)
    attention_map = _numpy(layer.attention_map(x))

    assert attention_map.shape == (2, 1, 1, channels)
    np.testing.assert_allclose(
        attention_map, expected_map, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        _numpy(layer(x)), x * expected_map, rtol=1e-5, atol=1e-6
    )


def test_cbam_is_channel_then_spatial_attention():
    layer = _built(LAYER_FACTORIES["cbam"])
    x = _inputs()
    channel_map = _reference_channel_map(
        x, _channel_weights(layer.channel_attention)
    )
    refined = x * channel_map
    spatial_map = _reference_spatial_map(
        refined, *_spatial_weights(layer.spatial_attention)
    )

    np.testing.assert_allclose(
        _numpy(layer.channel_attention_map(x)),
        channel_map,
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        _numpy(layer.attention_map(x)), spatial_map, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        _numpy(layer(x)), refined * spatial_map, rtol=1e-5, atol=1e-6
    )


def test_cbam_weights_are_its_two_branches():
    layer = _built(LAYER_FACTORIES["cbam"])
    # A weight's path starts with the name scopes open when it was built
    # (an earlier test in the process can leave Keras' "functional" scope
    # open) and Keras numbers repeated names ("cbam_2"): the paths are
    # compared from the layer's own name on, without the numbers.
    own = layer.name + "/"
    paths = sorted(
        re.sub(r"_\d+(?=/)", "", w.path[w.path.index(own) + len(own) :])
        for w in layer.weights
    )
    assert paths == [
        "channel_attention/hidden_bias",
        "channel_attention/hidden_kernel",
        "channel_attention/output_bias",
        "channel_attention/output_kernel",
        "spatial_attention/conv/bias",
        "spatial_attention/conv/kernel",
    ]


def test_aggregated_attention_is_spatial_attention():
    x = _inputs()
    spatial = _built(LAYER_FACTORIES["spatial"])
    aggregated = AggregatedAttention(kernel_size=3)
    aggregated.build(INPUT_SHAPE)
    aggregated.set_weights(spatial.get_weights())

    assert isinstance(aggregated, SpatialAttention)
    np.testing.assert_array_equal(_numpy(aggregated(x)), _numpy(spatial(x)))
    np.testing.assert_array_equal(
        _numpy(aggregated.attention_map(x)), _numpy(spatial.attention_map(x))
    )
    # Both are registered, each under its own name.
    assert (
        keras.saving.get_registered_name(AggregatedAttention)
        == "explain_attn>AggregatedAttention"
    )
    assert (
        keras.saving.get_registered_name(SpatialAttention)
        == "explain_attn>SpatialAttention"
    )


def test_layers_do_not_mutate_their_inputs():
    x = _inputs()
    before = x.copy()
    for factory in LAYER_FACTORIES.values():
        layer = _built(factory)
        layer(x)
        layer.attention_map(x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_attention_map_may_come_before_the_first_call(name):
    layer = LAYER_FACTORIES[name]()
    x = _inputs()
    attention_map = _numpy(layer.attention_map(x))

    assert layer.built
    weights = layer.get_weights()
    outputs = _numpy(layer(x))  # Must neither fail nor add weights.
    assert len(layer.get_weights()) == len(weights)
    np.testing.assert_array_equal(_numpy(layer.attention_map(x)), attention_map)
    if name == "channel":
        expected = x * attention_map
    else:
        refined = x
        if name == "cbam":
            refined = x * _numpy(layer.channel_attention_map(x))
        expected = refined * attention_map
    np.testing.assert_allclose(outputs, expected, rtol=1e-6, atol=1e-6)


def test_channel_map_may_come_first_in_cbam():
    layer = CBAM(reduction_ratio=2, kernel_size=3)
    channel_map = _numpy(layer.channel_attention_map(_inputs()))
    assert channel_map.shape == (2, 1, 1, 6)
    assert layer(_inputs()).shape == INPUT_SHAPE


# --- Argument validation ----------------------------------------------------


@pytest.mark.parametrize(
    ("kernel_size", "match"),
    [
        (4, r"`kernel_size` must be odd .* Received: kernel_size=4"),
        (0, r"positive integer\. Received: kernel_size=0"),
        (-3, r"positive integer\. Received: kernel_size=-3"),
        (True, r"positive integer\. Received: kernel_size=True"),
        (7.0, r"positive integer\. Received: kernel_size=7\.0"),
        ("7", r"positive integer\. Received: kernel_size='7'"),
    ],
)
@pytest.mark.parametrize("cls", [SpatialAttention, AggregatedAttention, CBAM])
def test_bad_kernel_size_is_refused(cls, kernel_size, match):
    with pytest.raises(ValueError, match=match):
        cls(kernel_size=kernel_size)


@pytest.mark.parametrize(
    ("reduction_ratio", "match"),
    [
        (
            0,
            r"`reduction_ratio` must be a positive integer\. Received: "
            r"reduction_ratio=0",
        ),
        (-2, r"Received: reduction_ratio=-2"),
        (1.5, r"Received: reduction_ratio=1\.5"),
        (False, r"Received: reduction_ratio=False"),
        (None, r"Received: reduction_ratio=None"),
    ],
)
@pytest.mark.parametrize("cls", [ChannelAttention, CBAM])
def test_bad_reduction_ratio_is_refused(cls, reduction_ratio, match):
    with pytest.raises(ValueError, match=match):
        cls(reduction_ratio=reduction_ratio)


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
@pytest.mark.parametrize(
    "shape", [(2, 5, 7), (2, 5, 7, 6, 1)], ids=["rank3", "rank5"]
)
def test_input_rank_other_than_4_is_refused(name, shape):
    layer = LAYER_FACTORIES[name]()
    expected = type(layer).__name__
    match = (
        f"`{expected}` expects inputs of rank 4 .*"
        f"Received: input_shape={re.escape(repr(shape))}"
    )
    with pytest.raises(ValueError, match=match):
        layer(np.zeros(shape, "float32"))


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_unknown_channel_count_is_refused(name):
    layer = LAYER_FACTORIES[name]()
    with pytest.raises(ValueError, match=r"known number of channels"):
        layer(keras.Input(shape=(5, 7, None)))


# --- Keras contract: config, shapes, saving ---------------------------------


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_config_round_trip_gives_identical_outputs(name):
    layer = _built(LAYER_FACTORIES[name])
    config = layer.get_config()
    clone = type(layer).from_config(config)
    clone.build(INPUT_SHAPE)
    clone.set_weights(layer.get_weights())

    assert clone.get_config() == config
    x = _inputs()
    np.testing.assert_array_equal(_numpy(clone(x)), _numpy(layer(x)))
    np.testing.assert_array_equal(
        _numpy(clone.attention_map(x)), _numpy(layer.attention_map(x))
    )


def test_config_holds_the_arguments():
    assert SpatialAttention(kernel_size=5).get_config()["kernel_size"] == 5
    channel = ChannelAttention(reduction_ratio=4).get_config()
    assert channel["reduction_ratio"] == 4
    cbam = CBAM(reduction_ratio=4, kernel_size=5).get_config()
    assert (cbam["reduction_ratio"], cbam["kernel_size"]) == (4, 5)


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_symbolic_and_eager_output_shapes_agree(name):
    layer = LAYER_FACTORIES[name]()
    symbolic = layer(keras.Input(shape=INPUT_SHAPE[1:], batch_size=None))
    eager = layer(_inputs())

    assert tuple(symbolic.shape) == (None, *INPUT_SHAPE[1:])
    assert tuple(eager.shape) == INPUT_SHAPE
    assert layer.compute_output_shape((None, *INPUT_SHAPE[1:])) == (
        None,
        *INPUT_SHAPE[1:],
    )
    assert layer.compute_output_shape(INPUT_SHAPE) == INPUT_SHAPE


@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_keras_file_round_trip_gives_identical_outputs(name, tmp_path):
    inputs = keras.Input(shape=INPUT_SHAPE[1:])
    layer = LAYER_FACTORIES[name]()
    model = keras.Model(inputs, layer(inputs))
    _randomize(layer)
    path = tmp_path / "m.keras"
    model.save(path)

    loaded = keras.saving.load_model(path)
    restored = loaded.get_layer(layer.name)

    assert type(restored) is type(layer)
    assert restored.get_config() == layer.get_config()
    for saved, reloaded in zip(layer.weights, restored.weights, strict=True):
        assert reloaded.path == saved.path
        np.testing.assert_array_equal(_numpy(reloaded), _numpy(saved))
    x = _inputs()
    np.testing.assert_array_equal(_numpy(loaded(x)), _numpy(model(x)))
    np.testing.assert_array_equal(
        _numpy(restored.attention_map(x)), _numpy(layer.attention_map(x))
    )
