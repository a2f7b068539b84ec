"""Layers whose call needs the batch size as a number (explain_attn.batching).

``B = ops.shape(x)[0]`` is ``None`` on a symbolic input: such a call is
traced with a known batch size and made general again. Its parts must
then compute, for any batch size, what the layer computes.
"""

import keras
import numpy as np

from explain_attn.attention.discovery import discover_modules
from explain_attn.graph import flat_graph


@keras.saving.register_keras_serializable(package="test_batching")
class ClassToken(keras.layers.Layer):
    """ViT-style: tokens from a feature map, a learned class token tiled
    for the batch (``ops.tile`` of a weight runs eagerly), in front."""

    def build(self, input_shape):
        self.token = self.add_weight(
            shape=(1, 1, input_shape[-1]), initializer="random_normal"
        )

    def call(self, inputs):
        batch = keras.ops.shape(inputs)[0]
        tokens = keras.ops.reshape(inputs, (batch, -1, inputs.shape[-1]))
        token = keras.ops.tile(self.token, (batch, 1, 1))
        return keras.ops.concatenate([token, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        height, width, channels = input_shape[1:]
        return (input_shape[0], height * width + 1, channels)


def _model():
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Conv2D(8, 1, name="conv")(inputs)
    tokens = ClassToken(name="class_token")(x)
    x = keras.layers.MultiHeadAttention(2, 4, name="mha")(tokens, tokens)
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def test_a_call_reading_the_batch_size_is_opened_for_any_batch():
    model = _model()
    graph = flat_graph(model)
    assert graph.untraced == {}
    assert graph.taps["class_token"].opened
    assert "class_token/tile" not in graph.taps  # Eager: not a call.
    concatenated = graph.taps["class_token/concatenate"].output
    parts = keras.Model(graph.model_inputs, [concatenated, *graph.outputs])
    # Neither the traced batch (97) nor the checked one (2).
    images = np.random.default_rng(0).random((3, 4, 4, 3), np.float32)
    tokens, outputs = [keras.ops.convert_to_numpy(t) for t in parts(images)]
    features = keras.Model(model.input, model.get_layer("conv").output)(images)
    token = keras.ops.convert_to_numpy(model.get_layer("class_token").token)
    expected = np.concatenate(
        [np.repeat(token, 3, axis=0), np.reshape(features, (3, 16, 8))],
        axis=1,
    )
    np.testing.assert_allclose(tokens, expected, rtol=1e-6, atol=1e-6)
    expected_outputs = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(outputs, expected_outputs, rtol=1e-5, atol=1e-6)
    # The class token is left out of the map: a 4 x 4 grid after 1 token.
    kinds = {m.path: m.kind for m in discover_modules(model)}
    assert (kinds["mha"].grid, kinds["mha"].extra) == ((4, 4), 1)


@keras.saving.register_keras_serializable(package="test_batching")
class FoldedHeads(keras.layers.Layer):
    """Self-attention over a 4 x 4 map with its 2 heads folded into the
    batch axis, as keras-hub's ViTDet writes it: the batch size sits in
    the second entry of a shape, ``(3, B · heads, tokens, size)``."""

    def __init__(self, heads=2, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads

    def build(self, input_shape):
        self.qkv = keras.layers.Dense(3 * input_shape[-1], name="qkv")
        self.qkv.build(input_shape)

    def call(self, inputs):
        batch, height, width, channels = keras.ops.shape(inputs)
        size = channels // self.heads
        qkv = keras.ops.reshape(
            self.qkv(inputs), (batch, height * width, 3, self.heads, size)
        )
        qkv = keras.ops.transpose(qkv, (2, 0, 3, 1, 4))
        qkv = keras.ops.reshape(
            qkv, (3, batch * self.heads, height * width, size)
        )
        queries, keys, values = keras.ops.unstack(qkv, axis=0)
        weights = keras.ops.softmax(
            keras.ops.matmul(queries, keras.ops.transpose(keys, (0, 2, 1)))
        )
        mixed = keras.ops.reshape(
            keras.ops.matmul(weights, values),
            (batch, self.heads, height, width, size),
        )
        mixed = keras.ops.transpose(mixed, (0, 2, 3, 1, 4))
        return keras.ops.reshape(mixed, (batch, height, width, channels))

    def get_config(self):
        return {**super().get_config(), "heads": self.heads}


@keras.saving.register_keras_serializable(package="test_batching")
class ProbePooling(keras.layers.Layer):
    """SigLIP-style pooling: a learned probe repeated ``B`` times (eagerly:
    a constant of the traced batch) is the query of a MultiHeadAttention
    layer over the tokens."""

    def build(self, input_shape):
        self.probe = self.add_weight(
            shape=(1, 1, input_shape[-1]), initializer="random_normal"
        )
        self.attention = keras.layers.MultiHeadAttention(2, 4, name="mha")
        self.attention.build((None, 1, input_shape[-1]), input_shape)

    def call(self, inputs):
        probes = keras.ops.repeat(
            self.probe, keras.ops.shape(inputs)[0], axis=0
        )
        return self.attention(probes, inputs)[:, 0]


def test_sizes_from_the_batch_anywhere_and_constants_given_to_layers():
    inputs = keras.Input((4, 4, 8))
    x = FoldedHeads(name="folded")(inputs)
    tokens = keras.layers.Reshape((16, 8))(x)
    outputs = ProbePooling(name="pooling")(tokens)
    model = keras.Model(inputs, keras.layers.Dense(2)(outputs))
    graph = flat_graph(model)
    assert graph.untraced == {}
    assert graph.taps["folded/softmax"].rows_per_image == 2  # heads
    modules = {m.path: m for m in discover_modules(model)}
    assert modules["folded/softmax"].kind.group == 2
    assert modules["pooling/attention"].kind.name == "mha"
    images = np.random.default_rng(0).random((3, 4, 4, 8), np.float32)
    parts = keras.Model(
        graph.model_inputs,
        [graph.taps["folded/softmax"].output, *graph.outputs],
    )
    weights, found = [keras.ops.convert_to_numpy(t) for t in parts(images)]
    # Rows (image, head), as the layer folds them; a batch of 3, neither
    # the traced (97) nor the checked one (2).
    layer = model.get_layer("folded")
    qkv = keras.ops.convert_to_numpy(layer.qkv(images)).reshape(3, 16, 3, 2, 4)
    logits = np.einsum("bqhd,bkhd->bhqk", qkv[:, :, 0], qkv[:, :, 1])
    expected = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    np.testing.assert_allclose(
        weights, expected.reshape(6, 16, 16), rtol=1e-5, atol=1e-6
    )
    outputs = keras.ops.convert_to_numpy(model(images))
    np.testing.assert_allclose(found, outputs, rtol=1e-5, atol=1e-6)
