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
from explain_attn.models.lookup import (
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


# Self-attention forms and full-shape gates, against NumPy (issue 24).


@pytest.fixture(scope="module")
def vit():
    return zoo_models.vit_class_token()


def _outputs(model, names, images):
    probe = keras.Model(model.input, [model.get_layer(n).output for n in names])
    values = probe(images)
    return [np.asarray(v) for v in keras.tree.flatten(values)]


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def test_class_token_attention_and_rollout_by_hand(vit):
    images = _images(vit, 2)
    normed = _outputs(vit, ["block0_norm", "block1_norm"], images)
    scores = []
    for index, tokens in enumerate(normed):
        layer = vit.get_layer(f"block{index}_mha")
        _, value = layer(tokens, tokens, return_attention_scores=True)
        scores.append(np.asarray(value, dtype=np.float64))  # (B, 2, 17, 17)
    maps = attention_maps(vit, images)
    for index, value in enumerate(scores):
        # The class token's row, patches only, averaged over heads.
        expected = value[:, :, 0, 1:].mean(axis=1).reshape(2, 4, 4)
        np.testing.assert_allclose(
            maps[f"block{index}_mha"], expected, rtol=0, atol=1e-5
        )
    rollout = np.eye(17)
    for value in scores:
        mixed = 0.5 * value.mean(axis=1) + 0.5 * np.eye(17)
        mixed /= mixed.sum(axis=-1, keepdims=True)
        rollout = mixed @ rollout
    expected = rollout[:, 0, 1:].reshape(2, 4, 4)
    np.testing.assert_allclose(
        maps["attention_rollout"], expected, rtol=0, atol=1e-5
    )
    (module,) = [m for m in discover_modules(vit) if m.kind.name == "rollout"]
    assert module.kind.extra == 1 and module.kind.grid == (4, 4)


def test_hand_written_dot_product_and_pooling_by_hand():
    images = _images(zoo_models.non_local_block(), 2)
    model = zoo_models.non_local_block()
    theta, phi = _outputs(model, ["theta", "phi"], images)
    theta, phi = theta.reshape(2, 64, 4), phi.reshape(2, 64, 4)
    weights = _softmax(theta @ phi.transpose(0, 2, 1), axis=-1)
    expected = weights.mean(axis=1).reshape(2, 8, 8)  # received per key
    np.testing.assert_allclose(
        attention_maps(model, images)["nl_softmax"], expected, atol=1e-5
    )
    model = zoo_models.gcnet_block()
    (logits,) = _outputs(model, ["gc_mask"], images)
    expected = _softmax(logits.reshape(2, 64), axis=-1).reshape(2, 8, 8)
    (module,) = discover_modules(model)
    assert module.kind.name == "pooling"
    np.testing.assert_allclose(
        attention_maps(model, images)[module.path], expected, atol=1e-6
    )


def _band_windows(shift=(0, 0), step=1):
    """Window attention written with `keras.ops`: the 8 x 8 map rolled by
    ``-shift``, every ``step``-th row kept, cut into windows of two rows
    (16 positions) that become rows of the batch axis."""
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 1, name="features")(inputs)
    x = ops.roll(x, shift=(-shift[0], -shift[1]), axis=(1, 2))[:, ::step]
    windows = ops.reshape(x, (-1, 16, 4))
    query = layers.Dense(4, name="query")(windows)
    key = layers.Dense(4, name="key")(windows)
    weights = layers.Softmax(name="window_softmax")(
        ops.matmul(query, ops.transpose(key, (0, 2, 1)))
    )
    x = ops.reshape(ops.matmul(weights, windows), (-1, 8 // step, 8, 4))
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize("shift", [(0, 0), (1, 3)])
def test_window_attention_put_back_in_the_image(shift):
    model = _band_windows(shift)
    (module,) = discover_modules(model)
    assert (module.kind.name, module.shape) == ("window", (8, 8, 1))
    assert "not comparable across windows" in module.kind.description
    images = _images(model, 2)
    (weights,) = _outputs(model, ["window_softmax"], images)
    assert weights.shape == (8, 16, 16)  # 4 windows per image.
    # Received per key within its window; windows are rows 0-1, 2-3...
    rolled = weights.mean(axis=1).reshape(2, 8, 8)
    expected = np.roll(rolled, shift, axis=(1, 2))
    found = attention_maps(model, images)["window_softmax"]
    np.testing.assert_allclose(found, expected, rtol=1e-5, atol=1e-7)
    if shift != (0, 0):
        assert not np.allclose(found, rolled, atol=1e-4)


def test_windows_that_lose_positions_have_no_map(tmp_path, data_8x8):
    model = _band_windows(step=2)  # Half the rows are never attended.
    assert discover_modules(model) == []
    model.save(tmp_path / "windows.keras")
    output = tmp_path / "maps.npz"
    result = _cli(
        "maps",
        tmp_path / "windows.keras",
        "--data",
        data_8x8,
        "--layer",
        "window_softmax",
        "--output",
        output,
    )
    _assert_one_line_error(
        result, "'window_softmax' attends within windows", "2 rows of 16"
    )
    assert not output.exists()


def test_mobilevit_attention_along_the_patch_axis():
    model = zoo_models.mobilevit_block()
    images = _images(model, 2)
    (module,) = discover_modules(model)
    assert module.kind.grid == (4, 4) and module.shape == (4, 4, 1)
    query = keras.tree.flatten(model.get_layer("mvit_mha").input)[0]
    unfolded = keras.Model(model.input, query)(images)
    _, scores = model.get_layer("mvit_mha")(
        unfolded, unfolded, return_attention_scores=True
    )
    scores = np.asarray(scores)  # (B, pixels in a patch, heads, N, N)
    assert scores.shape == (2, 4, 2, 16, 16)
    expected = scores.mean(axis=(1, 2, 3)).reshape(2, 4, 4)
    np.testing.assert_allclose(
        attention_maps(model, images)["mvit_mha"], expected, atol=1e-6
    )


def test_residual_attention_full_gate_is_its_channel_mean():
    model = zoo_models.residual_attention()
    images = _images(model, 2)
    (module,) = discover_modules(model)
    assert (module.path, module.kind.name) == ("one_plus/add", "full_gate")
    assert module.shape == (8, 8, 8)
    assert str(module.value_range) == "(1, 2)"
    assert "mean over channels" in module.kind.description
    (mask,) = _outputs(model, ["mask"], images)
    expected = (1.0 + mask).mean(axis=-1)
    np.testing.assert_allclose(
        attention_maps(model, images)[module.path], expected, atol=1e-6
    )


# Messages that point to the fix, and attention that cannot be read: one
# line, exit code 2, nothing written (issue 24).


def _cli(*arguments):
    from click.testing import CliRunner

    from explain_attn.cli import main

    return CliRunner().invoke(main, [str(a) for a in arguments])


def _assert_one_line_error(result, *phrases):
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "Traceback" not in result.output
    for phrase in phrases:
        assert phrase in line, line
    return line


@pytest.fixture
def data_8x8(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "data.npz"
    np.savez(
        path,
        images=rng.random((4, 8, 8, 3), dtype=np.float32),
        labels=np.arange(4) % 2,
        class_names=np.array(["a", "b"]),
    )
    return path


def test_a_lambda_that_fails_on_reload_names_its_root_cause(tmp_path):
    inputs = keras.Input((8, 8, 3))
    x = layers.Lambda(lambda t: t * keras.ops.sigmoid(t))(inputs)
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    keras.Model(inputs, outputs).save(tmp_path / "lambda.keras")
    result = _cli("layers", tmp_path / "lambda.keras", "--unsafe-load")
    _assert_one_line_error(
        result, "NameError: name 'keras' is not defined", "--model-factory"
    )


def test_a_tensorflow_activation_is_named_with_the_fix(tmp_path):
    import tensorflow as tf

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(2, 3, activation=tf.nn.swish)(inputs)
    keras.Model(inputs, x).save(tmp_path / "swish.keras")
    line = _assert_one_line_error(
        _cli("layers", tmp_path / "swish.keras"),
        "tf.nn.swish",
        "activation='swish'",
    )
    assert "--import MODULE" not in line


def test_tensorflow_errors_are_cut_to_one_line_naming_the_operation():
    import tensorflow as tf

    from explain_attn.stages import TENSORFLOW_MESSAGE_LIMIT, error_reason

    values = tf.constant(np.arange(6.0).reshape(2, 3))
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        tf.reshape(values, (4, 5))
    reason = error_reason(caught.value)
    assert "\n" not in reason and len(reason) <= TENSORFLOW_MESSAGE_LIMIT
    assert reason.startswith("TensorFlow failed in operation Reshape")
    assert "6 values" in reason


def _untraceable_model():
    """Attention inside a custom layer that calls TensorFlow directly."""
    import tensorflow as tf

    class RawSoftmaxGate(keras.layers.Layer):
        def call(self, inputs):
            return inputs * tf.math.sigmoid(tf.reduce_mean(inputs, -1, True))

    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = RawSoftmaxGate(name="raw_gate")(x)
    outputs = layers.Dense(2)(layers.GlobalAveragePooling2D()(x))
    return keras.Model(inputs, outputs)


def test_attention_in_a_layer_that_cannot_be_traced(tmp_path, data_8x8):
    model = _untraceable_model()
    assert discover_modules(model) == []
    from explain_attn.graph import flat_graph

    (failure,) = flat_graph(model).untraced.values()
    assert failure.class_name == "RawSoftmaxGate"
    module = tmp_path / "untraceable.py"
    module.write_text(
        f"import sys\nsys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_discovery import _untraceable_model as build\n"
    )
    model.save_weights(tmp_path / "m.weights.h5")
    output = tmp_path / "maps.npz"
    result = _cli(
        "maps",
        tmp_path / "m.weights.h5",
        "--model-factory",
        f"{module}:build",
        "--data",
        data_8x8,
        "--output",
        output,
    )
    _assert_one_line_error(
        result, "raw_gate (RawSoftmaxGate)", "could not be traced", "--layer"
    )
    assert not output.exists()


def _token_model(counts):
    """MultiHeadAttention layers over ``counts`` tokens in turn."""
    inputs = keras.Input((8, 8, 3))
    tokens = layers.Reshape((64, 8))(layers.Conv2D(8, 1)(inputs))
    for index, count in enumerate(counts):
        mixed = layers.Dense(count)(layers.Permute((2, 1))(tokens))
        tokens = layers.Permute((2, 1))(mixed)  # (B, count, 8)
        tokens = layers.MultiHeadAttention(1, 4, name=f"mha{index}")(
            tokens, tokens
        )
    outputs = layers.Dense(2)(layers.GlobalAveragePooling1D()(tokens))
    return keras.Model(inputs, outputs)


@pytest.mark.parametrize(
    ("counts", "layer", "phrases"),
    [
        ((3,), "mha0", ["'mha0'", "fit no grid", "(3, 8)"]),
        ((16, 4), "attention_rollout", ["mha0 (16), mha1 (4)", "--layer"]),
    ],
    ids=["no-grid", "rollout-of-different-token-counts"],
)
def test_attention_without_a_map_is_one_line(
    counts, layer, phrases, tmp_path, data_8x8
):
    model = _token_model(counts)
    model.save(tmp_path / "tokens.keras")
    output = tmp_path / "maps.npz"
    result = _cli(
        "maps",
        tmp_path / "tokens.keras",
        "--data",
        data_8x8,
        "--layer",
        layer,
        "--output",
        output,
    )
    _assert_one_line_error(result, *phrases)
    assert not output.exists()


def test_a_trace_that_computes_other_values_is_kept_opaque():
    """A call that decides on the batch size traces to another function:
    the flat graph is checked against the model, then each traced layer,
    and that layer stays one call; the rest is read as before."""

    class BatchDependent(keras.layers.Layer):
        def call(self, inputs):
            return inputs * (2.0 if inputs.shape[0] is None else 3.0)

    inputs = keras.Input((8, 8, 3))
    x = BatchDependent(name="odd")(layers.Conv2D(4, 3, name="conv")(inputs))
    gate = layers.Conv2D(1, 1, activation="sigmoid", name="gate")(x)
    outputs = layers.GlobalAveragePooling2D()(layers.Multiply()([x, gate]))
    model = keras.Model(inputs, outputs)
    from explain_attn.graph import flat_graph

    graph = flat_graph(model)
    assert "computes other values" in graph.untraced["odd"].reason
    assert not graph.taps["odd"].opened
    assert [m.path for m in discover_modules(model)] == ["gate"]
    maps = attention_maps(model, _images(model, 2))["gate"]
    assert maps.shape == (2, 6, 6) and np.all((maps > 0) & (maps < 1))


class GatedBlockWithNone(keras.layers.Layer):
    """Returns its output with ``None`` (as keras-hub's DeiT blocks do),
    before or after it."""

    def __init__(self, none_first, **kwargs):
        super().__init__(**kwargs)
        self.none_first = none_first
        self.gate = layers.Conv2D(1, 1, activation="sigmoid")

    def call(self, inputs):
        gated = inputs * self.gate(inputs)
        return (None, gated) if self.none_first else (gated, None)


class EncoderWithNone(keras.layers.Layer):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.blocks = [GatedBlockWithNone(True), GatedBlockWithNone(False)]

    def call(self, inputs):
        _, x = self.blocks[0](inputs)
        x, _ = self.blocks[1](x)
        # A constant beside it, as DeiT's encoder returns empty scores.
        return x, ops.zeros((0,))


def test_calls_returning_none_among_their_outputs_are_opened():
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = EncoderWithNone(name="encoder")(x)[0]
    outputs = layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, outputs)
    from explain_attn.graph import flat_graph

    assert flat_graph(model).untraced == {}
    paths = [m.path for m in discover_modules(model)]
    assert paths == ["encoder/blocks_0/gate", "encoder/blocks_1/gate"]
    images = _images(model, 2)
    features = model.get_layer("conv")(images)
    first, second = model.get_layer("encoder").blocks
    expected = [np.asarray(first.gate(features))[..., 0]]
    expected.append(
        np.asarray(second.gate(features * first.gate(features)))[..., 0]
    )
    maps = attention_maps(model, images)
    for path, values in zip(paths, expected, strict=True):
        np.testing.assert_allclose(maps[path], values, rtol=1e-5, atol=1e-6)
