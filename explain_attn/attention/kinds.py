"""Attention kinds: what a layer's map is, how to replace it, its weights.

Every attention module explain-attn can read is an `AttentionModule`: a
layer call of the model's flat graph (`explain_attn.graph`) and the
`AttentionKind` that knows how to read it. A kind answers three questions,
so that no other module needs to know which layer class it is looking at:

- `AttentionKind.parts`: the module's output written as ``features *
  weights`` (the weights are the map: ``(B, h, w, 1)`` for spatial
  attention, ``(B, 1, 1, C)`` for channel attention), or as ``weights``
  alone for a gate whose output is the map;
- `AttentionKind.recombine`: the module's output with the weights replaced
  (the interventions of `explain_attn.faithfulness`);
- `AttentionKind.channel_weights`: per-image channel weights, where the
  module has them.

Kinds of `KINDS` are read from one layer call and matched in order; the
first that matches wins. The structural kinds (`ChannelGate`, `AxisGates`,
`AttentionScores`, and `SpatialGate` found through a multiply) need the
whole graph: `explain_attn.attention.discovery` finds them, and it is the
one place that lists every module of a model. A new kind of attention is a
new `AttentionKind` subclass, added to `KINDS` or found by discovery.
"""

import abc
import dataclasses
import warnings

__all__ = [
    "KINDS",
    "AttentionKind",
    "AttentionModule",
    "AttentionRollout",
    "AttentionScores",
    "AxisGates",
    "ChannelGate",
    "ChannelLayer",
    "FullGate",
    "SigmoidGate",
    "SoftmaxAttention",
    "SpatialGate",
    "SpatialLayer",
    "WindowAttention",
    "find_kind",
    "layer_config",
]


def layer_config(layer):
    """``layer.get_config()``, or ``{}`` for a layer or operation without
    one (custom layers with unserialisable arguments raise
    ``NotImplementedError``)."""
    try:
        with warnings.catch_warnings():
            # Keras warns when a config holds a lambda (keras-hub's
            # MobileNetV5 activations): read here, never saved.
            warnings.filterwarnings(
                "ignore", message="The object being serialized includes"
            )
            return layer.get_config()
    except (NotImplementedError, TypeError, AttributeError):
        return {}


class AttentionKind(abc.ABC):
    """How to read one kind of attention module.

    Attributes:
        name: The kind's name in tables and reports.
        spatial: Whether the weights form a spatial ``(h, w)`` map.
        description: One sentence for ``explain-attn layers`` and reports.
    """

    name = ""
    spatial = True
    description = ""
    intervention_note = None
    """A note for the interventions' table, or ``None``."""
    intervenable = True
    """Whether `recombine` can replace the map inside the model (the
    module's tap output is a tensor the model's output depends on)."""

    @abc.abstractmethod
    def matches(self, tap):
        """Whether the layer call ``tap`` is a module of this kind."""

    @abc.abstractmethod
    def source(self, tap):
        """The graph tensor of ``tap`` that `parts` reads."""

    @abc.abstractmethod
    def parts(self, tap, source):
        """Returns ``(features, weights)`` with ``output = features * w``.

        ``features`` is ``None`` when the output is the weights themselves.
        """

    def recombine(self, features, weights):
        """The module's output for ``weights`` in place of its own."""
        return weights if features is None else features * weights

    def has_channel_weights(self, tap):
        """Whether `channel_weights` gives weights for ``tap``."""
        return False

    def channel_weights(self, tap, source):
        """``(B, C)`` channel weights, or ``None`` where there are none."""
        return None

    def __repr__(self):
        return f"{type(self).__name__}()"


def _layer_attention_kind(layer):
    """The ``attention_kind`` our layers declare, or ``None``."""
    if not callable(getattr(layer, "attention_parts", None)):
        return None
    return getattr(layer, "attention_kind", None)


class SpatialLayer(AttentionKind):
    """A layer with the attention protocol and a spatial map.

    The protocol, which explain-attn's own layers implement
    (`explain_attn.attention.layers`): ``attention_kind = "spatial"`` and
    ``attention_parts(inputs) -> (features, map)`` with ``layer(inputs) ==
    features * map``; optionally ``channel_attention_map(inputs)`` for
    channel weights ``(B, 1, 1, C)`` (as CBAM has).
    """

    name = "attention"
    description = "attention layer: its spatial weights"

    def matches(self, tap):
        return _layer_attention_kind(tap.layer) == "spatial"

    def source(self, tap):
        return tap.input

    def parts(self, tap, source):
        return tap.layer.attention_parts(source)

    def has_channel_weights(self, tap):
        return callable(getattr(tap.layer, "channel_attention_map", None))

    def channel_weights(self, tap, source):
        method = getattr(tap.layer, "channel_attention_map", None)
        return None if method is None else method(source)[:, 0, 0, :]


class ChannelLayer(SpatialLayer):
    """A layer with the attention protocol and channel weights only.

    ``attention_kind = "channel"``; ``attention_parts`` returns weights of
    shape ``(B, 1, 1, C)``. There is no spatial map.
    """

    name = "channel"
    spatial = False
    description = "channel attention layer: one weight per channel, no map"

    def matches(self, tap):
        return _layer_attention_kind(tap.layer) == "channel"

    def has_channel_weights(self, tap):
        return True

    def channel_weights(self, tap, source):
        return self.parts(tap, source)[1][:, 0, 0, :]


class SpatialGate(AttentionKind):
    """A plain-Keras spatial gate: a ``(B, H, W, 1)`` tensor in (0, 1).

    Such as ``Conv2D(1, 7, activation="sigmoid")`` in a hand-written CBAM,
    or the ``psi`` gate of an Attention U-Net. Matched per layer when the
    layer is a single-channel sigmoid; found by discovery when a gate of
    that shape (any squashing function, layers or `keras.ops`) multiplies
    features. The gate's output is the map; replacing it replaces the
    output wherever the model uses it.
    """

    name = "gate"
    description = "spatial gate (H, W, 1) multiplied into features: its output"
    intervention_note = (
        "A plain-Keras gate: its output (the map) is replaced wherever the "
        "model uses it; 'inverted' and 'mask' assume it multiplies "
        "features, as a sigmoid gate usually does."
    )

    def matches(self, tap):
        shape = getattr(tap.output, "shape", None)
        if shape is None or len(shape) != 4 or shape[-1] != 1:
            return False
        return layer_config(tap.layer).get("activation") == "sigmoid"

    def source(self, tap):
        return tap.output

    def parts(self, tap, source):
        return None, source


SigmoidGate = SpatialGate
"""The name of `SpatialGate` before structural discovery."""


class _FoundGate(AttentionKind):
    """A kind found by `explain_attn.attention.discovery` only."""

    def matches(self, tap):
        return False

    def source(self, tap):
        return tap.output

    def parts(self, tap, source):
        return None, source


class ChannelGate(_FoundGate):
    """A channel gate ``(B, 1, 1, C)`` multiplied into ``(B, H, W, C)``.

    Squeeze-and-excitation (EfficientNet's ``*_se_expand``, MobileNetV3's
    hard-sigmoid), ECA, CBAM's channel branch written in plain Keras. One
    weight per channel: no spatial map.
    """

    name = "channel_gate"
    spatial = False
    description = (
        "channel gate (1, 1, C) multiplied into features "
        "(squeeze-and-excitation): one weight per channel, no map"
    )

    def has_channel_weights(self, tap):
        return True

    def channel_weights(self, tap, source):
        return source[:, 0, 0, :]


class AxisGates(_FoundGate):
    """Coordinate attention: a ``(H, 1, C)`` and a ``(1, W, C)`` gate.

    The module's map is their outer product averaged over channels,
    ``m[i, j] = mean_c a_h[i, c] * a_w[j, c]``, computed from the two gate
    tensors (the tap's ``input``, a tuple); an axis gate found without its
    partner is repeated along the other axis. The gates cannot be replaced
    by one map, so there are no interventions.

    Args:
        grid: ``(H, W)`` of the features the gates weigh.
    """

    name = "axis"
    intervenable = False
    description = (
        "coordinate attention: (H, 1, C) and (1, W, C) gates; the map is "
        "their outer product, averaged over channels"
    )

    def __init__(self, grid=None):
        self.grid = grid

    def source(self, tap):
        return tap.input

    def parts(self, tap, source):
        import keras

        gates = list(source) if isinstance(source, list | tuple) else [source]
        product = gates[0]
        for gate in gates[1:]:
            product = product * gate
        attention = keras.ops.mean(product, axis=-1, keepdims=True)
        height, width = self.grid
        repeats = [1, 1, 1, 1]
        if attention.shape[1] == 1 and height != 1:
            repeats[1] = height
        if attention.shape[2] == 1 and width != 1:
            repeats[2] = width
        return None, keras.ops.tile(attention, repeats)


class FullGate(_FoundGate):
    """A full-shape gate ``(B, H, W, C)`` multiplied into features.

    Residual attention (Wang et al., 2017) writes ``(1 + M) * T`` with a
    mask ``M`` of the features' own shape. The map is the gate's mean over
    channels, ``m[i, j] = mean_c g[i, j, c]``; the gate's value range is
    recorded (``(1, 2)`` for ``1 + sigmoid``). It cannot be replaced by
    one map: no interventions.
    """

    name = "full_gate"
    intervenable = False
    description = (
        "full-shape gate (H, W, C) multiplied into features: the map is "
        "its mean over channels"
    )

    def parts(self, tap, source):
        import keras

        return None, keras.ops.mean(source, axis=-1, keepdims=True)


def _on_grid(received, grid, extra):
    """``(B, N)`` attention per position, leading ``extra`` tokens dropped,
    as a ``(B, h, w, 1)`` map."""
    import keras

    return keras.ops.reshape(received[:, extra:], (-1, *grid, 1))


class AttentionScores(_FoundGate):
    """Attention scores of a Keras attention layer over a grid of tokens.

    The layer (``MultiHeadAttention``, ``Attention``,
    ``AdditiveAttention``) is called again with
    ``return_attention_scores=True`` beside the model's graph (the tap's
    output is the scores, keys last). The map is, per key position on the
    grid the keys come from, the attention it receives averaged over heads
    and queries (``query="mean"``), or the class token's attention to it
    averaged over heads (``query="class"``: the first query's row). Leading
    class or register tokens (``extra``) are left out of the map. For
    attention along one axis of a 4-D input (MobileViT's unfolded patches)
    the other axes are averaged too. For attention over both spatial axes
    of a 4-D input (``attention_axes=(1, 2)``: scores ``(B, heads, h, w,
    h, w)``) the keys are the grid itself. Not replaceable inside the
    model: no interventions.

    Args:
        grid: ``(h, w)`` of the key positions.
        extra: Leading tokens that are not positions (class, registers).
        query: ``"mean"`` or ``"class"``.
        name: The kind's name: ``"mha"``, ``"keras_attention"`` or
            ``"dot_product_attention"`` (`explain_attn.attention.fused`).
        key_axes: How many axes the keys span in the scores (1, or 2 for
            ``attention_axes=(1, 2)``).
    """

    intervenable = False

    def __init__(
        self, grid=None, extra=0, query="mean", name="mha", key_axes=1
    ):
        self.grid = grid
        self.extra = extra
        self.query = query
        self.name = name
        self.key_axes = key_axes
        who = (
            "the class token's attention to each patch"
            if (query == "class")
            else "attention received per position, averaged over queries"
        )
        layer = {
            "mha": "MultiHeadAttention",
            "dot_product_attention": "fused dot_product_attention",
        }.get(name, "Keras attention")
        self.description = f"{layer}: {who}, averaged over heads"

    def parts(self, tap, source):
        import keras

        if self.key_axes == 2:
            keys = self.grid[0] * self.grid[1]
            source = keras.ops.reshape(source, (-1, *source.shape[1:-2], keys))
        if self.query == "class":
            source = source[..., 0, :]
        rank = len(source.shape)
        if rank > 2:
            source = keras.ops.mean(source, axis=tuple(range(1, rank - 1)))
        return None, _on_grid(source, self.grid, self.extra)

    def __repr__(self):
        return (
            f"AttentionScores(grid={self.grid}, extra={self.extra}, "
            f"query={self.query!r}, name={self.name!r}"
            + (f", key_axes={self.key_axes})" if self.key_axes != 1 else ")")
        )


class SoftmaxAttention(_FoundGate):
    """Dot-product attention written by hand: a softmax over positions
    whose output a matrix product consumes.

    Non-local blocks (``softmax(θᵀφ) g``) give ``name="dot_product"``: the
    map is the attention each position receives, averaged over queries.
    Attention pooling (GCNet's context block, CCT's sequence pooling: one
    softmax weight per position, then a weighted sum) gives
    ``name="pooling"``: the map is the pooling weights. The tap's output
    is the softmax's; ``axis`` is the axis it normalises (the positions).

    Args:
        grid: ``(h, w)`` of the positions.
        axis: The softmax's axis.
        extra: Leading tokens that are not positions.
        name: ``"dot_product"`` or ``"pooling"``.
        group: Consecutive rows of the batch axis that are one image's
            (or one window's): heads folded into the batch axis, as
            ViTDet's ``(B · heads, tokens, tokens)``; averaged.
    """

    intervenable = False

    def __init__(
        self, grid=None, axis=-1, extra=0, name="dot_product", group=1
    ):
        self.grid = grid
        self.axis = axis
        self.extra = extra
        self.name = name
        self.group = group
        self.description = (
            "attention pooling: softmax weight per position"
            if name == "pooling"
            else "dot-product attention (softmax then matmul): attention "
            "received per position, averaged over queries"
        )

    def parts(self, tap, source):
        return None, _on_grid(self.received(source), self.grid, self.extra)

    def received(self, source):
        """``(rows, positions)``: the softmax ``source`` averaged over
        every axis but the batch and its own."""
        import keras

        source = keras.ops.moveaxis(source, self.axis, -1)
        rank = len(source.shape)
        if rank > 2:
            source = keras.ops.mean(source, axis=tuple(range(1, rank - 1)))
        if self.group > 1:
            positions = source.shape[-1]
            grouped = keras.ops.reshape(source, (-1, self.group, positions))
            source = keras.ops.mean(grouped, axis=1)
        return source


class WindowAttention(SoftmaxAttention):
    """Dot-product attention within windows whose rows are in the batch
    axis (Swin Transformer's window attention, shifted or not).

    The softmax ``(B · windows, heads, tokens, tokens)`` is reduced as
    `SoftmaxAttention` reduces it, to the attention each token receives,
    averaged over heads and its window's queries; then each image's
    windows are put back in place: position ``i · W + j`` takes the value
    of the token ``layout.index`` names (window partition and cyclic
    shift undone, `explain_attn.attention.windows`). The softmax
    normalises within each window: values of different windows are not
    on one scale (a window's values average to ``1 / tokens``).

    Args:
        layout: Its `explain_attn.attention.windows.WindowLayout`.
        axis: The softmax's axis.
        group: Consecutive rows of the batch axis per window (heads folded
            into it after the windows, as ViTDet's ``(B · windows ·
            heads, tokens, tokens)``); averaged.
    """

    def __init__(self, layout=None, axis=-1, group=1):
        grid = layout.grid if layout else None
        super().__init__(grid, axis, 0, "window", group)
        self.layout = layout
        self.description = (
            "window attention (softmax then matmul within windows, as in "
            "Swin): attention received per position within its window, "
            "averaged over heads and the window's queries, windows put "
            "back in place and the cyclic shift undone; normalised per "
            "window, so values are not comparable across windows"
        )

    def parts(self, tap, source):
        import keras

        layout = self.layout
        per_image = keras.ops.reshape(
            self.received(source), (-1, layout.windows * layout.tokens)
        )
        placed = keras.ops.take(per_image, layout.index, axis=1)
        return None, keras.ops.reshape(placed, (-1, *layout.grid, 1))

    def __repr__(self):
        layout = self.layout
        return (
            f"WindowAttention(grid={layout.grid}, windows={layout.windows}, "
            f"tokens={layout.tokens})"
        )


class AttentionRollout(_FoundGate):
    """Attention rollout (Abnar & Zuidema, 2020) over a stack of layers.

    For each self-attention layer ``l`` in call order, ``A_l`` is its
    scores averaged over heads; with the residual connection,
    ``Â_l = (A_l + I) / 2``, rows renormalised to sum to one; the rollout
    is ``R = Â_L ··· Â_2 Â_1``. The map is the class token's row of ``R``
    over the patches when the tokens have a class token (``extra > 0``),
    else the attention each position receives, averaged over queries. The
    tap's ``input`` holds every layer's scores. A per-model map: no
    interventions.

    Args:
        grid: ``(h, w)`` of the patches.
        extra: Leading tokens that are not patches (class, registers).
    """

    name = "rollout"
    intervenable = False
    description = (
        "attention rollout (Abnar & Zuidema 2020) over every "
        "self-attention layer, per model"
    )

    def __init__(self, grid=None, extra=0):
        self.grid = grid
        self.extra = extra

    def source(self, tap):
        return tap.input

    def parts(self, tap, source):
        import keras

        rollout = None
        # From the grid: a traced function may not know the scores' size.
        tokens = self.extra + self.grid[0] * self.grid[1]
        for scores in source:
            if len(scores.shape) == 4:
                scores = keras.ops.mean(scores, axis=1)
            mixed = 0.5 * scores + 0.5 * keras.ops.eye(tokens)
            mixed = mixed / keras.ops.sum(mixed, axis=-1, keepdims=True)
            rollout = (
                mixed if rollout is None else keras.ops.matmul(mixed, rollout)
            )
        if self.extra > 0:
            received = rollout[:, 0, :]
        else:
            received = keras.ops.mean(rollout, axis=1)
        return None, _on_grid(received, self.grid, self.extra)


KINDS = [SpatialLayer(), ChannelLayer(), SpatialGate()]
"""The kinds tried, in order, by `find_kind`."""


def find_kind(tap):
    """Returns the first kind of `KINDS` that matches ``tap``, or ``None``."""
    return next((kind for kind in KINDS if kind.matches(tap)), None)


@dataclasses.dataclass(frozen=True)
class AttentionModule:
    """One attention module found in a model.

    Attributes:
        path: The layer's path (``outer/inner`` in nested models); for a
            gate found by structure, the call that made the gate tensor.
        kind: Its `AttentionKind`.
        tap: Its layer call in the model's flat graph (for `AxisGates` and
            `AttentionScores`, a `Tap` whose output is the map tensor that
            discovery added beside the graph).
        shape: The weights' shape without the batch, e.g. ``(8, 8, 1)``
            or ``(1, 1, 96)``; ``None`` if unknown.
        value_range: The weights' `explain_attn.attention.ranges.ValueRange`
            (``(0, 1)`` for a sigmoid, ``[0, 1]`` for a hard sigmoid,
            ``(1, 2)`` for BAM's ``1 + sigmoid``), or ``None``.
        found_by: One phrase: how it was found.
        applied_at: Path of the multiply that applies the gate, if any.
    """

    path: str
    kind: AttentionKind
    tap: object
    shape: tuple | None = None
    value_range: object = None
    found_by: str = ""
    applied_at: str | None = None

    def source(self):
        """The graph tensor to fetch for this module."""
        return self.kind.source(self.tap)

    def parts(self, source):
        """``(features, weights)`` of the module for a fetched ``source``."""
        return self.kind.parts(self.tap, source)
