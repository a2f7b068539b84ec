"""Attention inserted into an existing network, by layer name.

`add_attention` rebuilds a functional or Sequential model (nested backbones
included) with an attention module after each named layer. Every other
layer is a fresh copy of the original (``from_config``) holding a copy of
its weights, so the original model is never touched and training the new
one never changes it.

Kinds (``kind=``), each ending in a layer named ``<target>_<kind>`` whose
output replaces the target's output wherever the model used it:

- ``"spatial"``: `SpatialAttention` (the tutorial's layer), one layer.
- ``"cbam"``: `CBAM`, channel then spatial attention, one layer.
- ``"channel"``: CBAM's `ChannelAttention`, one layer.
- ``"se"``: squeeze-and-excitation (Hu et al., 2018) in plain Keras layers,
  in the shape of `keras.applications.EfficientNetB0`'s blocks:
  ``<target>_se_squeeze`` (global average pool, kept 4-D),
  ``<target>_se_reduce`` (1x1 conv, ReLU), ``<target>_se_expand`` (1x1
  conv, sigmoid: the ``(1, 1, C)`` gate) and ``<target>_se`` (multiply).
- ``"eca"``: efficient channel attention (Wang et al., 2020) in plain
  Keras layers: ``<target>_eca_squeeze`` (global average pool),
  ``<target>_eca_conv`` (a 1-D convolution across channels, kernel
  ``k = odd(|log2(C) + 1| / 2)``, no bias), ``<target>_eca_gate`` (sigmoid,
  reshaped to ``(1, 1, C)``) and ``<target>_eca`` (multiply).

``control=True`` builds the capacity-matched control instead: the same
network with a `keras.layers.Identity` named ``<target>_<kind>_control``
in place of each module. We chose identity over "attention frozen to
uniform" because a frozen sigmoid gate is a constant factor (0.5) that the
next convolution or normalisation absorbs: it would add parameters that
compute nothing, and the control would then carry an "attention map" that
is a constant. With identity the control is exactly the original network,
and the attention network differs from it by the modules' parameters only.
"""

import math

import keras
from keras import layers

from explain_attn.attention.layers import (
    CBAM,
    ChannelAttention,
    SpatialAttention,
)
from explain_attn.graph import model_state
from explain_attn.models.lookup import resolve_layers
from explain_attn.options import check_positive_int

__all__ = ["ATTENTION_KINDS", "add_attention", "rebuild"]

ATTENTION_KINDS = ("spatial", "cbam", "channel", "se", "eca")


def _eca_kernel(channels):
    """ECA's kernel size: the odd number nearest ``(log2(C) + 1) / 2``."""
    size = int(abs((math.log2(channels) + 1) / 2))
    return size if size % 2 else size + 1


def _squeeze_excite(x, name, reduction_ratio):
    channels = x.shape[-1]
    gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_squeeze")(
        x
    )
    gate = layers.Conv2D(
        max(1, channels // reduction_ratio),
        1,
        activation="relu",
        name=f"{name}_reduce",
    )(gate)
    gate = layers.Conv2D(
        channels, 1, activation="sigmoid", name=f"{name}_expand"
    )(gate)
    return layers.Multiply(name=name)([x, gate])


def _efficient_channel(x, name, reduction_ratio):
    del reduction_ratio  # ECA has no bottleneck.
    channels = x.shape[-1]
    gate = layers.GlobalAveragePooling2D(name=f"{name}_squeeze")(x)
    gate = layers.Reshape((channels, 1), name=f"{name}_columns")(gate)
    gate = layers.Conv1D(
        1,
        _eca_kernel(channels),
        padding="same",
        use_bias=False,
        name=f"{name}_conv",
    )(gate)
    gate = layers.Reshape((1, 1, channels), name=f"{name}_reshape")(gate)
    gate = layers.Activation("sigmoid", name=f"{name}_gate")(gate)
    return layers.Multiply(name=name)([x, gate])


def _module(kind, name, reduction_ratio, control):
    """A function from a 4-D tensor to the tensor with ``kind`` applied."""
    if control:
        return layers.Identity(name=f"{name}_control")
    if kind == "spatial":
        return SpatialAttention(7, name=name)
    if kind == "cbam":
        return CBAM(reduction_ratio=reduction_ratio, kernel_size=7, name=name)
    if kind == "channel":
        return ChannelAttention(reduction_ratio, name=name)
    builder = _squeeze_excite if kind == "se" else _efficient_channel
    return lambda x: builder(x, name, reduction_ratio)


def _check_kind(kind, reduction_ratio):
    if kind not in ATTENTION_KINDS:
        raise ValueError(
            f"Unknown attention kind. Received: kind={kind!r}. Expected one "
            f"of: {', '.join(ATTENTION_KINDS)}."
        )
    check_positive_int("reduction_ratio", reduction_ratio)


def _targets(model, after):
    """The paths ``after`` names, each checked to have a 4-D output."""
    if isinstance(after, str):
        after = [after]
    if not after:
        raise ValueError(
            "`after` must name at least one layer (a name, an outer/inner "
            "path or a glob pattern). Received: after=[]"
        )
    state = model_state(model)
    graph = state.graph
    paths = resolve_layers(state, list(after))
    for path in paths:
        tap = graph.taps[path]
        shape = tuple(tap.output.shape) if tap.is_spatial else None
        if shape is None or isinstance(tap.layer, keras.layers.InputLayer):
            received = getattr(tap.output, "shape", None)
            raise ValueError(
                f"Layer {path!r} has output shape "
                f"{None if received is None else tuple(received)}; "
                "attention needs a 4-D output (batch, H, W, C). Choose a "
                "convolutional layer or block output."
            )
        if shape[-1] is None:
            raise ValueError(
                f"Layer {path!r} has an unknown number of channels "
                f"{shape}; attention needs it. Build the model with a "
                "known input shape."
            )
    return paths


def add_attention(
    model, after, *, kind="spatial", control=False, reduction_ratio=8
):
    """Returns a copy of ``model`` with attention after the named layers.

    The original model is not modified; every layer of the copy starts
    from the original's weights (the inserted modules are newly
    initialised). See the module docstring for the kinds and the layer
    names.

    Args:
        model: A functional or built Sequential `keras.Model`; nested
            models (e.g. a `keras.applications` backbone) are searched.
        after: A layer name, an ``outer/inner`` path or a glob pattern over
            the paths of 4-D layers (``"*block_6_add"``), or a list of them.
        kind: One of `ATTENTION_KINDS`.
        control: Insert identity instead (the capacity-matched control).
        reduction_ratio: How much the channel perceptron of ``"cbam"``,
            ``"channel"`` and ``"se"`` shrinks the channels (unused by
            ``"spatial"`` and ``"eca"``).

    Returns:
        A new functional `keras.Model` named ``<name>_<kind>`` (or
        ``<name>_<kind>_control``).

    Raises:
        ValueError: For an unknown kind, a name that matches no layer, a
            layer whose output is not 4-D, or a name the new module would
            take that the model already uses.

    Example:

    >>> backbone = keras.applications.MobileNetV2(
    ...     input_shape=(32, 32, 3), alpha=0.35, weights=None,
    ...     include_top=False)
    >>> model = add_attention(backbone, ["block_3_add", "block_6_add"],
    ...                       kind="cbam")
    >>> model.get_layer("block_6_add_cbam").name
    'block_6_add_cbam'
    """
    _check_kind(kind, reduction_ratio)
    paths = _targets(model, after)

    def make(path, tensor):
        name = f"{path.split('/')[-1]}_{kind}"
        return _module(kind, name, reduction_ratio, control)(tensor)

    suffix = f"{kind}_control" if control else kind
    return rebuild(
        model,
        after={path: make for path in paths},
        name=f"{model.name}_{suffix}",
    )


def rebuild(model, *, after=None, before=None, name=None):
    """A copy of ``model`` (fresh layers, copied weights) with insertions.

    Args:
        model: A functional or Sequential `keras.Model`.
        after: ``{path: function(path, tensor) -> tensor}``: applied to the
            output of each named layer call (nested paths ``outer/inner``).
        before: ``function(tensor) -> tensor`` applied to the (single)
            input before any layer uses it, or ``None``.
        name: The copy's name (default: the model's).

    Returns:
        A functional `keras.Model`.

    Raises:
        ValueError: If an inserted layer's name is already taken, or a
            path was never reached.
    """
    done = set()
    copy = _rebuild(model, dict(after or {}), before, "", done)
    missing = sorted(set(after or {}) - done)
    if missing:
        raise ValueError(
            f"Could not insert after {', '.join(missing)}: not a layer "
            f"call of model {model.name!r}'s graph."
        )
    if name is not None and name != copy.name:
        copy = keras.Model(copy.input, copy.output, name=name)
    return copy


def _is_model(layer):
    return isinstance(layer, keras.Model)


def _inner(after, name):
    """The entries of ``after`` under the nested model ``name``."""
    start = f"{name}/"
    return {
        path[len(start) :]: function
        for path, function in after.items()
        if path.startswith(start)
    }


def _rebuild(model, after, before, prefix, done):
    pairs = []

    def clone(layer):
        inner = _inner(after, layer.name) if _is_model(layer) else {}
        if inner:
            return _rebuild(layer, inner, None, f"{prefix}{layer.name}/", done)
        if _is_model(layer):
            copy = keras.models.clone_model(layer, recursive=True)
        else:
            copy = layer.__class__.from_config(layer.get_config())
        pairs.append((layer, copy))
        return copy

    sequential = isinstance(model, keras.Sequential)
    inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name),
        model.inputs[0] if sequential else model.input,
    )
    flat_inputs = keras.tree.flatten(inputs)
    standardized = {}

    def replace_input(value):
        if before is None or not any(value is t for t in flat_inputs):
            return value
        if id(value) not in standardized:
            standardized[id(value)] = before(value)
        return standardized[id(value)]

    def call(layer, *args, **kwargs):
        args = keras.tree.map_structure(replace_input, args)
        output = layer(*args, **kwargs)
        if layer.name in after:
            path = f"{prefix}{layer.name}"
            if path in done:
                raise ValueError(
                    f"Layer {path!r} is called more than once; attention "
                    "can only be inserted after a layer called once."
                )
            output = after[layer.name](path, output)
            done.add(path)
        return output

    try:
        if sequential:
            outputs = inputs
            for layer in model.layers:
                outputs = call(clone(layer), outputs)
            copy = keras.Model(inputs, outputs, name=model.name)
        else:
            copy = keras.models.clone_model(
                model,
                input_tensors=inputs,
                clone_function=clone,
                call_function=call,
            )
    except ValueError as error:
        if "is used" not in str(error):
            raise
        raise ValueError(
            f"Cannot insert attention into model {model.name!r}: {error} "
            "Was attention already inserted there?"
        ) from None
    for original, new in pairs:
        new.set_weights(original.get_weights())
    return copy
