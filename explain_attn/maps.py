"""Attention maps by layer name, batched, in one forward pass.

The tutorial read "the attention map" as ``model.layers[2]``: in its residual
model that is a convolution, in its attention model the attended features.
Here a layer is always named, and for our attention layers the map is the
attention *weights*, computed from the layer's own input with the layer's
own ``attention_map`` method.
"""

import difflib
import fnmatch
import weakref

import keras
import numpy as np
import tensorflow as tf

from explain_attn._graph import flat_graph
from explain_attn.layers import CBAM, ChannelAttention, SpatialAttention

__all__ = [
    "attention_layer_names",
    "attention_maps",
    "channel_attention_weights",
    "describe_layers",
    "resolve_layers",
]

# What a map of each kind of layer is.
ATTENTION = "attention"  # our layers: the attention weights
GATE = "gate"  # a single-channel sigmoid layer: its output
SINGLE_CHANNEL = "single-channel"  # another single-channel layer: its output
ACTIVATION = "activation"  # any other 4-D layer: channel-mean activation
CHANNEL = "channel"  # ChannelAttention: weights per channel, no map


def layer_kind(tap):
    """Returns what `attention_maps` reads from a layer call, or ``None``."""
    layer = tap.layer
    if isinstance(layer, SpatialAttention | CBAM):
        return ATTENTION
    if isinstance(layer, ChannelAttention):
        return CHANNEL
    if not tap.is_spatial or isinstance(layer, keras.layers.InputLayer):
        return None
    if tap.output.shape[-1] == 1:
        return GATE if _is_sigmoid(layer) else SINGLE_CHANNEL
    return ACTIVATION


def _is_sigmoid(layer):
    config = layer.get_config()
    return config.get("activation") == "sigmoid"


def describe_layers(model):
    """Lists every layer call of ``model`` that maps can be read from.

    Args:
        model: A functional or built Sequential `keras.Model`; nested models
            are searched.

    Returns:
        A list of dicts with keys ``path`` (``outer/inner`` for nested
        models), ``kind`` (``"attention"``, ``"gate"``, ``"channel"``,
        ``"single-channel"`` or ``"activation"``), ``class_name`` and
        ``output_shape`` (a tuple, batch first), in call order.
    """
    rows = []
    for tap in flat_graph(model).taps.values():
        kind = layer_kind(tap)
        if kind is not None:
            rows.append(
                {
                    "path": tap.path,
                    "kind": kind,
                    "class_name": type(tap.layer).__name__,
                    "output_shape": tuple(tap.output.shape),
                }
            )
    return rows


def attention_layer_names(model):
    """Returns the paths of every spatial attention layer in ``model``.

    Recognised: `SpatialAttention` (and `AggregatedAttention`), `CBAM`, and
    gates of models built from plain Keras layers: a layer whose output is
    ``(batch, H, W, 1)`` with a sigmoid activation, such as
    ``Conv2D(1, 7, activation="sigmoid")``. Nested models are searched and
    their layers named ``outer/inner``.

    Args:
        model: A functional or built Sequential `keras.Model`.

    Returns:
        A list of paths in call order.

    Example:

    >>> attention_layer_names(build_model("residual"))
    ['res_attention']
    """
    return [
        tap.path
        for tap in flat_graph(model).taps.values()
        if layer_kind(tap) in (ATTENTION, GATE)
    ]


def resolve_layers(model, layers=None):
    """Turns layer names, paths or glob patterns into paths of ``model``.

    Args:
        model: The model.
        layers: ``None`` for every attention layer, or a string or a list of
            strings: a full path (``"outer/inner"``), a bare layer name
            (when it names exactly one layer at any depth), or a glob
            pattern (``"*attention*"``) over the 4-D layers' paths.

    Returns:
        A list of unique paths, in call order.

    Raises:
        ValueError: If a name matches no layer (the message lists the
            model's attention layers and the closest names), a bare name is
            ambiguous, or a pattern matches nothing.
    """
    graph = flat_graph(model)
    if layers is None:
        paths = attention_layer_names(model)
        if not paths:
            raise ValueError(
                f"Model {model.name!r} has no attention layer (no "
                "SpatialAttention, CBAM or single-channel sigmoid gate). Name "
                "the layers to read with `layers=` (see `explain-attn "
                "layers MODEL`)."
            )
        return paths
    if isinstance(layers, str):
        layers = [layers]
    order = list(graph.taps)
    found = []
    for request in layers:
        if not isinstance(request, str) or not request:
            raise TypeError(
                "Layer names must be non-empty strings. Received: "
                f"layers={layers!r}"
            )
        found.extend(_match(model, graph, request))
    unique = dict.fromkeys(found)
    return sorted(unique, key=order.index)


def _match(model, graph, request):
    if request in graph.taps:
        return [request]
    if any(character in request for character in "*?["):
        matches = [
            tap.path
            for tap in graph.taps.values()
            if tap.is_spatial and fnmatch.fnmatchcase(tap.path, request)
        ]
        if matches:
            return matches
        raise ValueError(
            f"Layer pattern {request!r} matches no 4-D layer of model "
            f"{model.name!r}. {_candidates(model, graph, request)}"
        )
    by_name = [path for path in graph.taps if path.split("/")[-1] == request]
    if len(by_name) == 1:
        return by_name
    if len(by_name) > 1:
        raise ValueError(
            f"Layer name {request!r} is ambiguous in model {model.name!r}: "
            f"{', '.join(by_name)}. Give the full path."
        )
    raise ValueError(
        f"No layer named {request!r} in model {model.name!r}. "
        f"{_candidates(model, graph, request)}"
    )


def _candidates(model, graph, request):
    attention = attention_layer_names(model)
    names = list(
        dict.fromkeys([*graph.taps, *(p.split("/")[-1] for p in graph.taps)])
    )
    close = difflib.get_close_matches(request, names, n=3, cutoff=0.5)
    listed = ", ".join(attention) if attention else "none"
    hint = f" Closest names: {', '.join(close)}." if close else ""
    return f"Attention layers: {listed}.{hint}"


class _Extractor:
    """One compiled, batched function from images to the requested maps."""

    def __init__(self, model, paths, resize_to):
        graph = flat_graph(model)
        self.taps = [graph.taps[path] for path in paths]
        self.kinds = [layer_kind(tap) for tap in self.taps]
        for tap, kind in zip(self.taps, self.kinds, strict=True):
            if kind == CHANNEL:
                raise ValueError(
                    f"Layer {tap.path!r} is a ChannelAttention layer: it "
                    "weighs channels and has no spatial map. Use "
                    "channel_attention_weights(model, images, "
                    f"{tap.path!r})."
                )
            if kind is None:
                raise ValueError(
                    f"Layer {tap.path!r} has output shape "
                    f"{tuple(tap.output.shape)}; a map needs a 4-D output "
                    "(batch, H, W, C). Choose a convolutional or attention "
                    "layer."
                )
        tensors = [
            tap.input if kind == ATTENTION else tap.output
            for tap, kind in zip(self.taps, self.kinds, strict=True)
        ]
        self.model = keras.Model(graph.model_inputs, tensors)
        self.resize_to = resize_to
        input_shape = tuple(graph.inputs[0].shape)
        self.function = tf.function(
            self._maps,
            input_signature=[tf.TensorSpec(input_shape, tf.float32)],
        )

    def _maps(self, images):
        tensors = self.model(images, training=False)
        if not isinstance(tensors, list | tuple):
            tensors = [tensors]
        maps = []
        rows = zip(self.taps, self.kinds, tensors, strict=True)
        for tap, kind, tensor in rows:
            if kind == ATTENTION:
                attention = tap.layer.attention_map(tensor)
            elif kind in (GATE, SINGLE_CHANNEL):
                attention = tensor
            else:
                attention = tf.reduce_mean(tensor, axis=-1, keepdims=True)
            if self.resize_to is not None:
                attention = tf.image.resize(
                    attention, self.resize_to, method="bilinear"
                )
            maps.append(tf.cast(attention[..., 0], tf.float32))
        return maps


_EXTRACTORS = weakref.WeakKeyDictionary()


def _extractor(model, paths, resize_to):
    cache = _EXTRACTORS.setdefault(model, {})
    key = (tuple(paths), resize_to)
    if key not in cache:
        cache[key] = _Extractor(model, paths, resize_to)
    return cache[key]


def attention_maps(
    model, images, *, layers=None, batch_size=128, resize_to=None
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
    compiled function built once per model and layer set and cached. The
    model and the images are not modified.

    Args:
        model: A functional or built Sequential `keras.Model` (nested models
            are searched).
        images: ``(N, H, W, C)`` array matching the model's input shape.
        layers: ``None`` for every attention layer, or names, paths or glob
            patterns (see `resolve_layers`).
        batch_size: Images per forward pass.
        resize_to: ``None`` (the layer's own resolution), ``"input"`` (the
            model's input height and width) or ``(height, width)``;
            resizing is bilinear.

    Returns:
        A dict from layer path to an ``(N, h, w)`` float32 array.

    Raises:
        ValueError: For unknown layers, layers without a spatial map, or
            images whose shape does not match the model's input.
    """
    paths = resolve_layers(model, layers)
    images = check_images(model, images)
    resize_to = _resize_target(model, resize_to)
    extractor = _extractor(model, paths, resize_to)
    chunks = {path: [] for path in paths}
    for batch in _batches(images, batch_size):
        for path, values in zip(paths, extractor.function(batch), strict=True):
            chunks[path].append(values.numpy())
    return {path: _concatenate(chunks[path]) for path in paths}


def channel_attention_weights(model, images, layer, *, batch_size=128):
    """Reads the channel weights of a `ChannelAttention` or `CBAM` layer.

    Args:
        model: The model.
        images: ``(N, H, W, C)`` array matching the model's input shape.
        layer: Name or path of one `ChannelAttention` or `CBAM` layer.
        batch_size: Images per forward pass.

    Returns:
        ``(N, channels)`` float32 weights in (0, 1).
    """
    (path,) = _single(model, layer)
    tap = flat_graph(model).taps[path]
    if not isinstance(tap.layer, ChannelAttention | CBAM):
        raise ValueError(
            f"Layer {path!r} is a {type(tap.layer).__name__}, not a "
            "ChannelAttention or CBAM layer, so it has no channel weights."
        )
    images = check_images(model, images)
    cache = _EXTRACTORS.setdefault(model, {})
    key = ("channel", path)
    if key not in cache:
        feature_model = keras.Model(flat_graph(model).model_inputs, tap.input)
        method = (
            tap.layer.channel_attention_map
            if isinstance(tap.layer, CBAM)
            else tap.layer.attention_map
        )

        def weights(batch):
            return method(feature_model(batch, training=False))[:, 0, 0, :]

        cache[key] = tf.function(
            weights,
            input_signature=[
                tf.TensorSpec(tuple(feature_model.inputs[0].shape), tf.float32)
            ],
        )
    return _concatenate(
        [cache[key](batch).numpy() for batch in _batches(images, batch_size)]
    )


def _single(model, layer):
    paths = resolve_layers(model, [layer])
    if len(paths) != 1:
        raise ValueError(
            f"Expected one layer. Received: layer={layer!r}, which matches "
            f"{', '.join(paths)}."
        )
    return paths


def check_images(model, images):
    """Validates ``images`` against the model's input; returns float32.

    Returns a float32 array (a new one when a conversion is needed; the
    caller's array is never written to).

    Raises:
        TypeError: If the array is not numeric.
        ValueError: If it is empty or its shape does not match the model's
            input shape (the message names both).
    """
    return _check_images(images, tuple(flat_graph(model).inputs[0].shape[1:]))


def _check_images(images, expected):
    images = np.asarray(images)
    if images.dtype == bool or not np.issubdtype(images.dtype, np.number):
        raise TypeError(
            f"Images must be a numeric array. Received: dtype={images.dtype}"
        )
    if images.ndim != 4 or any(
        want is not None and want != got
        for want, got in zip(expected, images.shape[1:], strict=False)
    ):
        raise ValueError(
            f"Images of shape {images.shape[1:]} (per image) do not match "
            f"the model's input shape {expected}. Resize the data to the "
            "model's input (e.g. `--image-size`) or use a matching model."
        )
    if len(images) == 0:
        raise ValueError("No images given. Pass at least one image.")
    return images.astype(np.float32, copy=False)


def _resize_target(model, resize_to):
    return _resize_size(tuple(flat_graph(model).inputs[0].shape[1:]), resize_to)


def _resize_size(input_shape, resize_to):
    if resize_to is None:
        return None
    if isinstance(resize_to, str) and resize_to == "input":
        height, width = input_shape[:2]
        if height is None or width is None:
            raise ValueError(
                "resize_to='input' needs a model with a fixed input height "
                "and width. Pass resize_to=(height, width) instead."
            )
        return (int(height), int(width))
    if (
        isinstance(resize_to, tuple | list)
        and len(resize_to) == 2
        and all(isinstance(v, int) and v > 0 for v in resize_to)
    ):
        return (resize_to[0], resize_to[1])
    raise ValueError(
        "resize_to must be None, 'input' or (height, width) of positive "
        f"integers. Received: resize_to={resize_to!r}"
    )


def _batches(images, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise TypeError(f"batch_size must be an int. Received: {batch_size!r}")
    if batch_size < 1:
        raise ValueError(
            f"batch_size must be at least 1. Received: batch_size={batch_size}"
        )
    for start in range(0, len(images), batch_size):
        yield tf.constant(images[start : start + batch_size])


def _concatenate(chunks):
    return np.concatenate(chunks)


def predict_classes(model, images, *, batch_size=128):
    """Returns the predicted class of each image, ``(N,)`` int64.

    One compiled forward pass per batch, built once per model (Keras'
    ``predict`` rebuilds its loop on every call, which dominates on the
    chunks a report streams).
    """
    images = check_images(model, images)
    cache = _EXTRACTORS.setdefault(model, {})
    if "predict" not in cache:
        graph = flat_graph(model)
        forward = keras.Model(graph.model_inputs, graph.outputs[0])
        cache["predict"] = tf.function(
            lambda batch: tf.argmax(forward(batch, training=False), axis=-1),
            input_signature=[
                tf.TensorSpec(tuple(graph.inputs[0].shape), tf.float32)
            ],
        )
    return _concatenate(
        [
            cache["predict"](batch).numpy()
            for batch in _batches(images, batch_size)
        ]
    ).astype(np.int64)


def export_maps(
    model, dataset, path, *, layers=None, with_grad_cam=False, batch_size=128
):
    """Computes maps for a dataset and writes them to an ``.npz`` atomically.

    Args:
        model: The model.
        dataset: An `explain_attn.data.Dataset`.
        path: Output file ending in ``.npz``.
        layers: As in `attention_maps`.
        with_grad_cam: Also store Grad-CAM at the default layer for each
            image's predicted class.
        batch_size: Images per forward pass.

    Returns:
        A dict from each stored array's description to its shape.

    The file holds ``map_<i>`` for the i-th entry of ``layer_names``,
    ``labels``, ``predictions``, ``class_names`` and, with Grad-CAM,
    ``grad_cam`` and ``grad_cam_layer``.
    """
    from explain_attn.cam import default_cam_layer, grad_cam
    from explain_attn.saving import atomic_path

    paths = resolve_layers(model, layers)
    maps = attention_maps(
        model, dataset.images, layers=paths, batch_size=batch_size
    )
    arrays = {f"map_{i}": maps[p] for i, p in enumerate(paths)}
    arrays["layer_names"] = np.array(paths)
    arrays["labels"] = np.asarray(dataset.labels)
    arrays["predictions"] = predict_classes(
        model, dataset.images, batch_size=batch_size
    )
    arrays["class_names"] = np.array(dataset.class_names)
    summary = {p: maps[p].shape for p in paths}
    if with_grad_cam:
        layer = default_cam_layer(model)
        arrays["grad_cam"] = grad_cam(
            model, dataset.images, layer=layer, batch_size=batch_size
        )
        arrays["grad_cam_layer"] = np.array(layer)
        summary[f"grad_cam ({layer})"] = arrays["grad_cam"].shape
    if not str(path).endswith(".npz"):
        raise ValueError(f"The output must end in '.npz'. Received: {path!r}")
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return summary
