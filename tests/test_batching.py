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
