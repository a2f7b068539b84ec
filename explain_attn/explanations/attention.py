"""Attention maps by layer name, batched, in one forward pass.

For an attention module the map is its attention *weights*, computed by its
`explain_attn.attention.kinds.AttentionKind` from the graph tensor the kind
reads; never the attended features. Other 4-D layers can be read too, as
what they are: a single-channel output, or the channel mean of the
activations (an activation map, not an attention map).
"""

import keras
import numpy as np
import tensorflow as tf

from explain_attn.attention.discovery import (
    attention_module,
    unreadable_attention,
)
from explain_attn.devices import graph_function, run_replicated
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.inputs import (
    batches,
    check_model_images,
    input_shape,
    model_batches,
    resize_target,
)
from explain_attn.graph import model_state
from explain_attn.models.lookup import resolve_layers, single_layer
from explain_attn.models.task import predicted_labels

__all__ = [
    "AttentionExtractor",
    "ChannelWeights",
    "attention_maps",
    "channel_attention_weights",
]


def _reading(state, tap):
    """``(tensor to fetch, function of it giving (B, h, w, 1))`` for a tap."""
    module = attention_module(state, tap.path)
    if module is not None:
        kind = module.kind
        if not kind.spatial:
            raise ValueError(
                f"Layer {tap.path!r} is a {kind.description}. Read its "
                "weights with channel_attention_weights(model, images, "
                f"{tap.path!r}) (explain-attn maps writes them as "
                "'channel_<i>'), or its channel-weighted activations with "
                "--method channel_weighted."
            )
        return module.source(), lambda source: module.parts(source)[1]
    reason = unreadable_attention(state, tap.path)
    if reason is not None:
        raise ValueError(reason)
    if not tap.is_spatial or isinstance(tap.layer, keras.layers.InputLayer):
        raise ValueError(
            f"Layer {tap.path!r} has output shape "
            f"{tuple(tap.output.shape)}; a map needs a 4-D output "
            "(batch, H, W, C). Choose a convolutional or attention layer."
        )
    height, width = tap.output.shape[1:3]
    if height == 1 and width == 1:
        raise ValueError(
            f"Layer {tap.path!r} has output shape "
            f"{tuple(tap.output.shape)}: a 1×1 output is not a map. Choose "
            "a layer whose output is at least 2×2 (see `explain-attn "
            "layers MODEL`)."
        )
    if tap.output.shape[-1] == 1:
        return tap.output, lambda output: output
    return tap.output, lambda output: tf.reduce_mean(
        output, axis=-1, keepdims=True
    )


class AttentionExtractor:
    """One compiled, batched function from images to the requested maps.

    Build it once per model and layer set, then call it on each batch.

    Args:
        model: The model.
        paths: Layer paths (see `resolve_layers`).
        resize_to: ``None`` or ``(height, width)``; bilinear.
        predictions: Also return each image's predicted class from the
            same forward pass (`maps_and_predictions`).
    """

    def __init__(self, model, paths, resize_to=None, *, predictions=False):
        state = model_state(model)
        graph = state.graph
        self.paths = list(paths)
        readings = [_reading(state, graph.taps[path]) for path in self.paths]
        self._functions = [function for _, function in readings]
        self.predictions = predictions
        # A reading may fetch several tensors (coordinate attention's two
        # gates): the model's outputs are flat, regrouped in `_maps`; the
        # scores for the predictions, if asked for, come last.
        self._structure = [tensor for tensor, _ in readings]
        self._model = keras.Model(
            graph.model_inputs,
            keras.tree.flatten(self._structure)
            + [graph.outputs[0]] * predictions,
        )
        self.resize_to = resize_to
        self.function = graph_function(
            self._maps,
            input_signature=[
                tf.TensorSpec(tuple(graph.inputs[0].shape), tf.float32)
            ],
        )

    def _maps(self, images):
        tensors = self._model(images, training=False)
        tensors = keras.tree.flatten(tensors)
        scores = tensors.pop() if self.predictions else None
        tensors = keras.tree.pack_sequence_as(self._structure, tensors)
        maps = []
        for function, tensor in zip(self._functions, tensors, strict=True):
            attention = function(tensor)
            if self.resize_to is not None:
                attention = tf.image.resize(
                    attention, self.resize_to, method="bilinear"
                )
            maps.append(tf.cast(attention[..., 0], tf.float32))
        if scores is not None:
            maps.append(predicted_labels(scores))
        return maps

    def __call__(self, batch):
        """A dict from path to the batch's ``(B, h, w)`` float32 maps."""
        return self.maps_and_predictions(batch)[0]

    def maps_and_predictions(self, batch):
        """``(maps dict, (B,) int64 predicted classes or None)``."""
        values = [value.numpy() for value in self.function(batch)]
        maps = dict(zip(self.paths, values, strict=False))
        return maps, values[-1] if self.predictions else None


def attention_maps(
    model,
    images,
    *,
    layers=None,
    batch_size=128,
    resize_to=None,
    input_scale=None,
    preprocess=None,
    strategy=None,
):
    """Reads spatial attention maps of ``model`` for ``images``, by name.

    What a map is, per layer:
    - `SpatialAttention`, `AggregatedAttention`, `CBAM`: the attention
      weights in (0, 1) (the spatial ones for CBAM), never the attended
      features;
    - a layer with a single-channel 4-D output (e.g. a sigmoid gate): its
      output;
    - any other 4-D layer: the mean over channels of its activations (an
      *activation map*, not an attention map).

    All requested layers come out of one forward pass per batch, through a
    compiled function built once per layer set and kept in the model's
    `explain_attn.graph.ModelState`: given a model, each call builds a
    state (graph and function) again; given a state
    (`explain_attn.graph.model_state`), calls share them. The model and the
    images are not modified.

    Args:
        model: A functional or built Sequential `keras.Model` (nested models
            are searched), or its `explain_attn.graph.ModelState`.
        images: ``(N, H, W, C)`` array matching the model's input shape,
            or a `tf.data.Dataset`, an iterable of batches, a list of image
            files or a data source (`explain_attn.explanations.inputs`).
        layers: ``None`` for every attention layer, or names, paths or glob
            patterns (see `resolve_layers`).
        batch_size: Images per forward pass.
        resize_to: ``None`` (the layer's own resolution), ``"input"`` (the
            model's input height and width) or ``(height, width)``;
            resizing is bilinear.
        input_scale: ``None`` or the scale the model takes, ``"unit"``,
            ``"byte"`` or ``"symmetric"`` (see
            `explain_attn.explanations.inputs.model_batches`).
        preprocess: ``None`` or a function applied to every batch.
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share each batch (`explain_attn.devices.make_strategy`).

    Returns:
        A dict from layer path to an ``(N, h, w)`` float32 array.

    Raises:
        ValueError: For unknown layers, layers without a spatial map, or
            images whose shape does not match the model's input.
    """
    state = model_state(model)
    paths = resolve_layers(state, layers)
    target = resize_target(input_shape(state), resize_to)
    extractor = compiled(
        state,
        (tuple(paths), target),
        lambda: AttentionExtractor(state, paths, target),
    )
    chunks = {path: [] for path in paths}
    for batch in model_batches(
        state,
        images,
        batch_size,
        input_scale=input_scale,
        preprocess=preprocess,
    ):
        maps = run_replicated(
            strategy, lambda part: list(extractor(part).values()), batch
        )
        for path, values in zip(paths, maps, strict=True):
            chunks[path].append(values)
    return {path: np.concatenate(chunks[path]) for path in paths}


class ChannelWeights:
    """One compiled function from images to a module's channel weights.

    Args:
        model: The model.
        path: Path of an attention module with channel weights.

    Raises:
        ValueError: If the module has no channel weights.
    """

    def __init__(self, model, path):
        state = model_state(model)
        graph = state.graph
        module = attention_module(state, path)
        if module is None or not module.kind.has_channel_weights(module.tap):
            raise ValueError(
                f"Layer {path!r} is a "
                f"{type(graph.taps[path].layer).__name__} that weighs no "
                "channels: not a channel gate (squeeze-and-excitation), "
                "ChannelAttention or CBAM layer. See `explain-attn layers "
                "MODEL` for the model's channel attention."
            )
        source = keras.Model(graph.model_inputs, module.source())
        kind, tap = module.kind, module.tap

        def weights(batch):
            return kind.channel_weights(tap, source(batch, training=False))

        self.function = graph_function(
            weights,
            input_signature=[
                tf.TensorSpec(tuple(graph.inputs[0].shape), tf.float32)
            ],
        )

    def __call__(self, batch):
        return self.function(batch).numpy()


def channel_attention_weights(model, images, layer, *, batch_size=128):
    """Reads the channel weights of one channel-attention module.

    A channel gate found by structure (squeeze-and-excitation as in
    EfficientNet or MobileNetV3), a `ChannelAttention` or a `CBAM` layer.

    Args:
        model: The model.
        images: ``(N, H, W, C)`` array matching the model's input shape.
        layer: Name or path of the module.
        batch_size: Images per forward pass.

    Returns:
        ``(N, channels)`` float32 weights, in the module's value range
        (see `explain_attn.attention.discovery.discover_modules`).
    """
    state = model_state(model)
    path = single_layer(state, layer)
    weights = compiled(
        state, ("channel", path), lambda: ChannelWeights(state, path)
    )
    images = check_model_images(state, images)
    return np.concatenate(
        [weights(batch) for batch in batches(images, batch_size)]
    )
