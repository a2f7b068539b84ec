"""Layers by name: paths, bare names and glob patterns, nested models too.

The tutorial read "the attention map" as ``model.layers[2]``. Here a layer
is always named: by its path in the model's flat graph (``outer/inner`` for
nested models), by its bare name when that is unique, or by a glob pattern.
What a layer *is* (attention, gate, channel attention) comes from
`explain_attn.attention.kinds`.

Every function takes a `keras.Model` (its flat graph is then built for the
call) or the model's `explain_attn.graph.ModelState` (built once and
passed on by the caller).
"""

import difflib
import fnmatch

import keras

from explain_attn.attention.discovery import (
    discover_modules,
    unreadable_attention,
)
from explain_attn.graph import model_state

__all__ = [
    "ACTIVATION",
    "SINGLE_CHANNEL",
    "attention_layer_names",
    "attention_modules",
    "cam_candidates",
    "channel_module_names",
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


def reading_kind(tap, module=None):
    """Returns what a map of the layer call ``tap`` is, or ``None``.

    The name of its attention module's kind when ``module`` (an
    `AttentionModule` at ``tap``) is given, else ``"single-channel"`` or
    ``"activation"`` for other 4-D layers, else ``None`` (no map can be
    read).
    """
    if module is not None:
        return module.kind.name
    if not tap.is_spatial or isinstance(tap.layer, keras.layers.InputLayer):
        return None
    return SINGLE_CHANNEL if tap.output.shape[-1] == 1 else ACTIVATION


def describe_layers(model):
    """Lists every attention module of ``model`` and every 4-D layer.

    Args:
        model: A functional or built Sequential `keras.Model`; nested models
            are searched.

    Returns:
        A list of dicts, in call order, with keys ``path`` (``outer/inner``
        for nested models), ``kind`` (an attention kind's name, see
        `explain_attn.attention.kinds`, or ``"single-channel"`` or
        ``"activation"``), ``class_name``, ``output_shape`` (a tuple, batch
        first), ``module`` (the `AttentionModule` or ``None``) and
        ``cam_candidate`` (whether Grad-CAM can use it: a layer with a map
        of at least 2×2).
    """
    state = model_state(model)
    modules = {module.path: module for module in discover_modules(state)}
    candidates = set(cam_candidates(state))
    rows = []
    for tap in state.graph.taps.values():
        module = modules.get(tap.path)
        kind = reading_kind(tap, module)
        if kind is None:
            continue
        rows.append(
            {
                "path": tap.path,
                "kind": kind,
                "class_name": type(tap.layer).__name__,
                "output_shape": tuple(tap.output.shape),
                "module": module,
                "cam_candidate": tap.path in candidates,
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
        A list of `explain_attn.attention.kinds.AttentionModule`, found by
        `explain_attn.attention.discovery.discover_modules`.
    """
    return [
        module
        for module in discover_modules(model)
        if module.kind.spatial or not spatial
    ]


def channel_module_names(model):
    """Paths of the modules with channel weights and no spatial map (SE
    gates, `ChannelAttention`), in call order."""
    return [
        module.path
        for module in discover_modules(model)
        if not module.kind.spatial
        and module.kind.has_channel_weights(module.tap)
    ]


def attention_layer_names(model):
    """Returns the paths of every spatial attention layer in ``model``.

    Recognised: `SpatialAttention` (and `AggregatedAttention`), `CBAM`,
    single-channel sigmoid layers such as ``Conv2D(1, 7,
    activation="sigmoid")``, and, by structure, spatial gates ``(H, W, 1)``
    and coordinate-attention gates multiplied into features (layers or
    `keras.ops`) and ``MultiHeadAttention`` over a feature map's positions
    (see `explain_attn.attention.discovery`). Channel gates (SE) have no
    map: see `channel_module_names`. Nested models are searched and their
    layers named ``outer/inner``.

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
    state = model_state(model)
    graph = state.graph
    if layers is None:
        paths = attention_layer_names(state)
        if not paths:
            channel = channel_module_names(state)
            extra = (
                f" It has {len(channel)} channel-attention module(s) (e.g. "
                f"{channel[0]!r}), which weigh channels and have no spatial "
                "map: read them with channel_attention_weights."
                if channel
                else ""
            )
            raise ValueError(
                f"Model {state.model.name!r} has no attention layer with a "
                "spatial map (no SpatialAttention, CBAM, spatial or axis "
                "gate, or "
                f"MultiHeadAttention over positions).{extra}"
                f"{_untraced_note(state)} Name the layers to read with "
                "--layer (API: layers=; see `explain-attn layers MODEL`)."
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
        found.extend(_match(state, request))
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


def cam_candidates(model):
    """Paths of the layers Grad-CAM can weigh, in call order.

    A layer (not a `keras.ops` operation, an input or a nested model) with
    a 4-D output whose map is at least 2×2 (or of unknown size): a 1×1
    map has no spatial structure, and its normalised CAM is all zeros.
    """
    graph = model_state(model).graph
    candidates = []
    for tap in graph.taps.values():
        if not tap.is_spatial or not isinstance(tap.layer, keras.layers.Layer):
            continue
        if isinstance(tap.layer, keras.layers.InputLayer | keras.Model):
            continue
        if _too_small(tap) or _passes_softmax_weights(graph, tap):
            continue
        candidates.append(tap.path)
    return candidates


_PASSING = {"Dropout", "Identity", "Cast"}
"""Layers that pass their input on unchanged at inference."""


def _passes_softmax_weights(graph, tap):
    """Whether ``tap`` (a dropout inside a traced attention layer, as in
    keras-hub's Swin and MiT) passes on a softmax's weights: ``(B, heads,
    queries, keys)`` is not a feature map."""
    while type(tap.layer).__name__ in _PASSING:
        tap = graph.producer(tap.input)
        if tap is None:
            return False
        if type(tap.layer).__name__ == "Softmax":
            return True
    return False


def _too_small(tap):
    height, width = tap.output.shape[1:3]
    return height is not None and width is not None and height * width < 2


def default_cam_layer(model):
    """Returns the path of the last Grad-CAM candidate with several
    channels (the feature map before pooling), see `cam_candidates`.

    Raises:
        ValueError: If the model has no layer with a 4-D output of at least
            2×2.
    """
    state = model_state(model)
    taps = state.graph.taps
    candidates = cam_candidates(state)
    several = [p for p in candidates if taps[p].output.shape[-1] != 1]
    if not (several or candidates):
        raise ValueError(
            f"Model {state.model.name!r} has no layer with a 4-D output "
            "(batch, H, W, C) of at least 2×2, so Grad-CAM has no feature "
            "map to weigh. Use a convolutional model, or larger input images."
        )
    return (several or candidates)[-1]


def _match(state, request):
    graph, model = state.graph, state.model
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
            f"{model.name!r}. {_candidates(state, request)}"
        )
    by_name = [path for path in graph.taps if path.split("/")[-1] == request]
    if len(by_name) == 1:
        return by_name
    if len(by_name) > 1:
        raise ValueError(
            f"Layer name {request!r} is ambiguous in model {model.name!r}: "
            f"{', '.join(by_name)}. Give the full path."
        )
    reason = unreadable_attention(state, request)
    if reason is not None:
        raise ValueError(reason)
    raise ValueError(
        f"No layer named {request!r} in model {model.name!r}. "
        f"{_candidates(state, request)}"
    )


def _untraced_note(state):
    """A sentence naming the layers whose calls could not be traced."""
    untraced = state.graph.untraced
    if not untraced:
        return ""
    names = ", ".join(
        f"{path} ({failure.class_name})" for path, failure in untraced.items()
    )
    return (
        f" Custom layers whose calls could not be traced were read as "
        f"whole layers, attention inside them unseen: {names}."
    )


def _candidates(state, request):
    graph = state.graph
    attention = [m.path for m in discover_modules(state)]
    names = list(
        dict.fromkeys([*graph.taps, *(p.split("/")[-1] for p in graph.taps)])
    )
    close = difflib.get_close_matches(request, names, n=3, cutoff=0.5)
    listed = ", ".join(attention[:8]) if attention else "none"
    if len(attention) > 8:
        listed += f" and {len(attention) - 8} more"
    hint = f" Closest names: {', '.join(close)}." if close else ""
    return f"Attention layers: {listed}.{hint}"
