"""Layers by name: paths, bare names and glob patterns, nested models too.

The tutorial read "the attention map" as ``model.layers[2]``. Here a layer
is always named: by its path in the model's flat graph (``outer/inner`` for
nested models), by its bare name when that is unique, or by a glob pattern.
What a layer *is* (attention, gate, channel attention) comes from
`explain_attn.attention.kinds`.
"""

import difflib
import fnmatch

import keras

from explain_attn.attention.kinds import AttentionModule, find_kind
from explain_attn.models.graph import flat_graph

__all__ = [
    "ACTIVATION",
    "SINGLE_CHANNEL",
    "attention_layer_names",
    "attention_modules",
    "default_cam_layer",
    "describe_layers",
    "reading_kind",
    "resolve_layers",
    "single_layer",
]

SINGLE_CHANNEL = "single-channel"
"""Kind of a 4-D, single-channel layer that is no gate: its output."""

ACTIVATION = "activation"
"""Kind of any other 4-D layer: the mean of its activations over channels."""


def reading_kind(tap):
    """Returns what a map of the layer call ``tap`` is, or ``None``.

    The name of its attention kind (``"attention"``, ``"channel"``,
    ``"gate"``), else ``"single-channel"`` or ``"activation"`` for other
    4-D layers, else ``None`` (no map can be read).
    """
    kind = find_kind(tap)
    if kind is not None:
        return kind.name
    if not tap.is_spatial or isinstance(tap.layer, keras.layers.InputLayer):
        return None
    return SINGLE_CHANNEL if tap.output.shape[-1] == 1 else ACTIVATION


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
        kind = reading_kind(tap)
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


def attention_modules(model, *, spatial=True):
    """Every attention module of ``model``, in call order.

    Args:
        model: A functional or built Sequential `keras.Model`.
        spatial: Only the modules with a spatial map (``False``: all,
            channel attention included).

    Returns:
        A list of `explain_attn.attention.kinds.AttentionModule`.
    """
    modules = []
    for tap in flat_graph(model).taps.values():
        kind = find_kind(tap)
        if kind is not None and (kind.spatial or not spatial):
            modules.append(AttentionModule(tap.path, kind, tap))
    return modules


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
    return [module.path for module in attention_modules(model)]


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


def single_layer(model, layer):
    """Resolves ``layer`` to exactly one path of ``model``.

    Raises:
        ValueError: If it matches no layer or several.
    """
    paths = resolve_layers(model, [layer])
    if len(paths) != 1:
        raise ValueError(
            f"Expected one layer. Received: layer={layer!r}, which matches "
            f"{', '.join(paths)}."
        )
    return paths[0]


def default_cam_layer(model):
    """Returns the path of the last 4-D layer (the one before pooling).

    Raises:
        ValueError: If the model has no layer with a 4-D output.
    """
    spatial = [
        tap.path
        for tap in flat_graph(model).taps.values()
        if tap.is_spatial
        and not isinstance(tap.layer, keras.layers.InputLayer)
        and not isinstance(tap.layer, keras.Model)
    ]
    if not spatial:
        raise ValueError(
            f"Model {model.name!r} has no layer with a 4-D output (batch, H, "
            "W, C), so Grad-CAM has no feature map to weigh. Use a "
            "convolutional model."
        )
    return spatial[-1]


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
