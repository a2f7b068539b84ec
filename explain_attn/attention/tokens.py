"""Self-attention over tokens: the grid they come from, and every form.

Three forms of self-attention are found in the flat graph
(`explain_attn.graph`), each read as a map on the grid of feature
map positions its tokens were made from:

- Keras attention layers (``MultiHeadAttention``, ``Attention``,
  ``AdditiveAttention``), called again for their scores
  (`explain_attn.attention.kinds.AttentionScores`), on 3-D token sequences
  or along one axis of a 4-D input (MobileViT's unfolded patches);
- a softmax over positions whose output a ``matmul``, ``dot`` or
  ``einsum`` consumes: dot-product attention written by hand (non-local
  blocks) and attention pooling (GCNet, CCT's sequence pooling), kind
  `explain_attn.attention.kinds.SoftmaxAttention`;
- attention rollout over a stack of self-attention layers of equal token
  count, per model (`explain_attn.attention.kinds.AttentionRollout`).

A softmax over windows whose rows are in the batch axis (Swin's window
attention) is put back in the image, kind
`explain_attn.attention.kinds.WindowAttention`
(`explain_attn.attention.windows`).

The grid: the nearest 4-D tensor upstream, not made by a reshape or a
transpose (tokens split into heads), whose ``h * w`` equals the token
count, less up to `MAX_EXTRA_TOKENS` leading class or register tokens;
else a square. Tokens that fit no grid are not a map: discovery keeps the
reason, for the error a user who asks for that layer gets.
"""

import math

import keras

from explain_attn.attention.kinds import (
    AttentionModule,
    AttentionRollout,
    AttentionScores,
    SoftmaxAttention,
    WindowAttention,
    layer_config,
)
from explain_attn.attention.ranges import ValueRange
from explain_attn.attention.windows import window_layout
from explain_attn.graph import Tap

__all__ = [
    "MAX_EXTRA_TOKENS",
    "ROLLOUT_PATH",
    "attention_layer_modules",
    "rollout_module",
    "scores_module",
    "softmax_modules",
    "token_grid",
    "upstream",
]

MAX_EXTRA_TOKENS = 5
"""Leading tokens a sequence may carry before its patches: a class token,
a distillation token (DeiT), up to four registers (DINOv2)."""

ROLLOUT_PATH = "attention_rollout"
"""The path of a model's attention rollout."""

_ATTENTION_LAYERS = {
    keras.layers.MultiHeadAttention: "mha",
    keras.layers.Attention: "keras_attention",
    keras.layers.AdditiveAttention: "keras_attention",
}

_PRODUCTS = {"Matmul", "Dot", "Einsum", "BatchDot", "Tensordot"}
"""Operations and layers that apply weights by a matrix product."""

_MOVING = {
    "Reshape",
    "Transpose",
    "Permute",
    "ExpandDims",
    "Squeeze",
    "Dropout",
    "Cast",
    "Identity",
}
"""Calls between a softmax and its product that only move values."""

_SOFTMAX = ValueRange(0.0, 1.0, False, False, "softmax")


def token_grid(graph, tensor, positions, *, per_token=1):
    """``((h, w), extra)`` of ``positions`` tokens, or ``None``.

    Args:
        graph: The flat graph.
        tensor: The tensor the tokens were computed from.
        positions: The token count.
        per_token: For attention along one axis of a 4-D input, how many
            pixels of the source map each token stands for (``ph * pw``
            for MobileViT's patches): the source has ``h * w ==
            positions * per_token``, the grid is ``(h / ph, w / pw)``.
    """
    for source in upstream(graph, tensor):
        height, width = source.shape[1], source.shape[2]
        if height is None or width is None or height * width < 2:
            continue
        if _moved(graph, source):
            continue
        if per_token > 1:
            side = math.isqrt(per_token)
            if side * side != per_token or height * width != (
                positions * per_token
            ):
                continue
            return (height // side, width // side), 0
        for extra in range(MAX_EXTRA_TOKENS + 1):
            if height * width == positions - extra:
                return (int(height), int(width)), extra
    if per_token > 1:
        return None
    for extra in range(MAX_EXTRA_TOKENS + 1):
        side = math.isqrt(max(positions - extra, 0))
        if side > 1 and side * side == positions - extra:
            return (side, side), extra
    return None


def _moved(graph, tensor):
    """Whether a 4-D ``tensor`` only moves values of another (a reshape of
    tokens into heads, ``(B, N, heads, d)``): not a map of positions."""
    tap = graph.producer(tensor)
    return tap is not None and type(tap.layer).__name__ in _MOVING


def upstream(graph, tensor, *, rank=4, limit=200):
    """Tensors of ``rank`` dimensions upstream of ``tensor``, nearest
    first (4: feature maps; 3: token sequences)."""
    frontier, seen = [tensor], {id(tensor)}
    while frontier and len(seen) < limit:
        following = []
        for value in frontier:
            shape = getattr(value, "shape", None)
            if value is not tensor and shape is not None and len(shape) == rank:
                yield value
            tap = graph.producer(value)
            for source in [] if tap is None else tap.tensors:
                if id(source) not in seen:
                    seen.add(id(source))
                    following.append(source)
        frontier = following


def _call_arguments(tap):
    """``(key, inputs, other keywords)`` of an attention layer call;
    ``inputs`` is ``[query, value]`` or ``[query, value, key]``."""
    keywords = dict(tap.keywords)
    keywords.pop("return_attention_scores", None)
    if isinstance(tap.layer, keras.layers.MultiHeadAttention):
        given = dict(
            zip(("query", "value", "key"), tap.arguments, strict=False)
        )
        for name in ("query", "value", "key"):
            if name in keywords:
                given[name] = keywords.pop(name)
        inputs = [given["query"], given["value"]]
        if given.get("key") is not None:
            inputs.append(given["key"])
    else:
        inputs = list(
            tap.arguments[0] if tap.arguments else keywords.pop("inputs")
        )
    return inputs[-1] if len(inputs) > 2 else inputs[1], inputs, keywords


def _key_layout(layer, key):
    """``(positions, per_token)`` of a key, ``"grid"`` for attention over
    both spatial axes of a 4-D key, or ``None`` (another layout)."""
    shape = tuple(key.shape)
    if any(size is None for size in shape[1:]):
        return None
    if len(shape) == 3:
        return int(shape[1]), 1
    axes = layer_config(layer).get("attention_axes")
    if len(shape) != 4 or axes is None:
        return None
    axes = (axes,) if isinstance(axes, int) else tuple(axes)
    if sorted(a % 4 for a in axes) == [1, 2]:
        return "grid"
    if len(axes) != 1:
        return None
    axis = axes[0] % 4
    if axis not in (1, 2):
        return None
    return int(shape[axis]), int(shape[3 - axis])


def attention_layer_modules(graph, unreadable):
    """``AttentionScores`` modules of every Keras attention layer call whose
    keys lie on a grid; the others' reasons go to ``unreadable``."""
    modules = []
    for tap in list(graph.taps.values()):
        name = next(
            (
                n
                for c, n in _ATTENTION_LAYERS.items()
                if isinstance(tap.layer, c)
            ),
            None,
        )
        if name is None:
            continue
        key, inputs, keywords = _call_arguments(tap)
        layout = _key_layout(tap.layer, key)
        found = None
        if layout == "grid":
            found = tuple(int(size) for size in key.shape[1:3]), 0
        elif layout is not None:
            found = token_grid(graph, key, layout[0], per_token=layout[1])
        if found is None:
            unreadable[tap.path] = _no_grid(tap, key)
            continue
        scores = _symbolic_scores(tap, inputs, keywords)
        query_kind = "class" if found[1] and len(key.shape) == 3 else "mean"
        kind = AttentionScores(
            *found, query_kind, name, 2 if layout == "grid" else 1
        )
        modules.append(
            scores_module(tap, key, scores, kind, type(tap.layer).__name__)
        )
    return modules


def scores_module(tap, key, scores, kind, what):
    """The `AttentionModule` of attention ``scores`` (keys last) that
    ``tap``'s call computes over ``key``, read as ``kind`` (an
    `AttentionScores`); ``what`` names the call in ``found_by``."""
    grid, extra = kind.grid, kind.extra
    return AttentionModule(
        tap.path,
        kind,
        Tap(tap.path, tap.layer, key, scores),
        shape=(*grid, 1),
        value_range=_SOFTMAX,
        found_by=f"{what} scores over {grid[0]}×{grid[1]} positions"
        + (f" after {extra} leading token(s)" if extra else ""),
    )


def _no_grid(tap, key):
    return (
        f"{type(tap.layer).__name__} layer {tap.path!r} attends over keys "
        f"of shape {tuple(key.shape)[1:]}, whose tokens fit no grid of "
        "feature-map positions (h×w tokens after at most "
        f"{MAX_EXTRA_TOKENS} class or register tokens, or one axis of a "
        "4-D input), so it has no attention map. Choose another layer "
        "(explain-attn layers MODEL lists them)."
    )


_SCORE_CALL_ERRORS = (
    AttributeError,  # Keras 3.5 reading the shape of a None keyword.
    KeyError,
    IndexError,
    NotImplementedError,  # A subclass that keeps its scores.
    RuntimeError,
    TypeError,
    ValueError,
)
"""What a symbolic call of an attention layer raises when it cannot return
its scores (seen with Keras 3.5 and with subclasses)."""


def _symbolic_scores(tap, inputs, keywords):
    """The scores tensor of a second, symbolic call of ``tap``'s layer.

    Raises:
        ValueError: If the call fails (a subclass that cannot return its
            scores, or a Keras version whose layer differs from the ones
            tested), naming the layer and the first error.
    """
    try:
        return _Scores(tap.layer, tap.path)(inputs, **keywords)
    except _SCORE_CALL_ERRORS as error:
        # Keras wraps the error in layers of context; the first says why.
        cause, seen = error, {id(error)}
        while (cause.__cause__ or cause.__context__) is not None:
            cause = cause.__cause__ or cause.__context__
            if id(cause) in seen:
                break
            seen.add(id(cause))
        message = " ".join(f"{type(cause).__name__}: {cause}".split())
        kind = next(
            c.__name__ for c in _ATTENTION_LAYERS if isinstance(tap.layer, c)
        )
        raise ValueError(
            f"Could not read the attention scores of {kind} "
            f"layer {tap.path!r} with Keras {keras.__version__} "
            f"({message[:200]}). The layer must return its scores when "
            "called with return_attention_scores=True, as "
            "keras.layers.MultiHeadAttention does; if it is Keras' own "
            "layer, upgrade Keras (pip install -U keras)."
        ) from error


class _Scores(keras.layers.Layer):
    """Calls an attention layer (same object, same weights) and returns its
    attention scores only.

    Keras does not connect the scores of a second, symbolic call of the
    layer itself (``return_attention_scores=True``) to a model's inputs;
    a new layer holding it gives them their own node. It is never saved.
    The catch-all is named ``kwargs``: Keras skips only ``args`` and
    ``kwargs`` when it reads a call's input shapes (Keras 3.5 fails on a
    catch-all of another name holding ``query_mask=None``).
    """

    def __init__(self, attention, path):
        # Named by the path: layer names repeat across keras-hub blocks.
        name = path.replace("/", ".")
        super().__init__(name=f"{name}_explain_attn_scores")
        self.attention = attention

    def call(self, inputs, **kwargs):
        if isinstance(self.attention, keras.layers.MultiHeadAttention):
            _, scores = self.attention(
                *inputs, return_attention_scores=True, **kwargs
            )
        else:
            _, scores = _attention_scores(self.attention, inputs, kwargs)
        return scores


def _attention_scores(attention, inputs, kwargs):
    """``attention(inputs, return_attention_scores=True)``, the layer left
    as it was: Keras before 3.12 keeps the last call's choice on
    ``Attention`` (``_return_attention_scores``), so every later call of
    the layer, the model's own included, would return the scores too."""
    kept = getattr(attention, "_return_attention_scores", None)
    try:
        return attention(inputs, return_attention_scores=True, **kwargs)
    finally:
        if kept is not None:
            attention._return_attention_scores = kept


def softmax_modules(graph, unreadable):
    """`SoftmaxAttention` modules: softmaxes over positions that a matrix
    product consumes."""
    consumers = _consumers(graph)
    modules = []
    for tap in list(graph.taps.values()):
        axis = _softmax_axis(tap)
        if axis is None or not _reaches_product(graph, tap.output, consumers):
            continue
        shape = tuple(tap.output.shape)
        axis = axis % len(shape)
        if axis == 0 or shape[axis] is None:
            continue
        layout = window_layout(graph, tap.output, int(shape[axis]))
        group = _rows_per_group(tap, layout)
        if isinstance(group, str):
            unreadable[tap.path] = (
                f"Softmax {tap.path!r} attends within windows: {group}, "
                "so it has no map per image. Choose another layer "
                "(explain-attn layers MODEL lists them)."
            )
            continue
        if layout is not None and not layout.is_identity:
            modules.append(_window_module(tap, layout, axis, group))
            continue
        if group > 1 and not _image_tokens(graph, tap.output, shape[axis]):
            unreadable[tap.path] = (
                f"Softmax {tap.path!r} holds {group} rows per image in its "
                "batch axis, and its tokens are not all of an image's "
                "positions (windows not made by moving values?), so it has "
                "no map per image. Choose another layer (explain-attn "
                "layers MODEL lists them)."
            )
            continue
        found = token_grid(graph, tap.output, int(shape[axis]))
        if found is None:
            unreadable[tap.path] = _no_grid(tap, tap.output)
            continue
        grid, extra = found
        others = [size for i, size in enumerate(shape[1:], 1) if i != axis]
        pooling = all(size == 1 for size in others)
        name = "pooling" if pooling else "dot_product"
        modules.append(
            AttentionModule(
                tap.path,
                SoftmaxAttention(grid, axis, extra, name, group),
                tap,
                shape=(*grid, 1),
                value_range=_SOFTMAX,
                found_by=f"softmax over {grid[0]}×{grid[1]} positions "
                "applied by a matrix product",
            )
        )
    return modules


def _rows_per_group(tap, layout):
    """Consecutive rows of a softmax's batch axis that belong to one
    window (one image without windows): heads folded into the batch
    axis. ``layout``: the `window_layout` found, ``None`` or why not;
    returns why not (a string) where the rows do not fit."""
    if isinstance(layout, str):
        return layout
    rows = tap.rows_per_image  # None: not traced with a known batch.
    windows = 1 if layout is None or layout.is_identity else layout.windows
    if rows is None:
        return 1
    if rows % windows:
        return (
            f"its batch axis holds {rows} rows per image, not a multiple "
            f"of its {windows} windows per image"
        )
    return rows // windows


def _image_tokens(graph, tensor, tokens):
    """Whether ``tokens`` are every position of a per-image feature map
    upstream of ``tensor`` (after up to `MAX_EXTRA_TOKENS` leading
    tokens): rows folded into the batch axis are then heads, not windows
    (ViTDet's global blocks)."""
    for source in upstream(graph, tensor):
        producer = graph.producer(source)
        if _moved(graph, source) or producer is None:
            continue
        if producer.rows_per_image not in (None, 1):
            continue  # Windows (or heads) in the batch axis.
        height, width = source.shape[1], source.shape[2]
        if height is not None and width is not None:
            if 0 <= tokens - height * width <= MAX_EXTRA_TOKENS:
                return True
    return False


def _window_module(tap, layout, axis, group=1):
    """A `WindowAttention` module of a softmax over windows."""
    side = math.isqrt(layout.tokens)
    window = f"{side}×{side}" if side * side == layout.tokens else layout.tokens
    return AttentionModule(
        tap.path,
        WindowAttention(layout, axis, group),
        tap,
        shape=(*layout.grid, 1),
        value_range=_SOFTMAX,
        found_by=f"softmax within {layout.windows} windows of {window} "
        f"positions per image, applied by a matrix product, put back on "
        f"the {layout.grid[0]}×{layout.grid[1]} grid",
    )


def _softmax_axis(tap):
    """The axis of a softmax call, or ``None`` if ``tap`` is none."""
    layer = tap.layer
    name = type(layer).__name__
    if name == "Softmax":
        axis = layer_config(layer).get("axis", getattr(layer, "axis", -1))
        return axis[0] if isinstance(axis, list | tuple) else axis
    if isinstance(layer, keras.layers.Layer) and not isinstance(
        layer, keras.Model
    ):
        if layer_config(layer).get("activation") == "softmax":
            return -1
    return None


def _consumers(graph):
    """``{id(tensor): [taps that take it]}``."""
    consumers = {}
    for tap in graph.taps.values():
        for tensor in tap.tensors:
            consumers.setdefault(id(tensor), []).append(tap)
    return consumers


def _reaches_product(graph, tensor, consumers, depth=4):
    """Whether ``tensor`` is an operand of a matrix product, through at
    most ``depth`` calls that only move values."""
    frontier = [tensor]
    for _ in range(depth):
        following = []
        for value in frontier:
            for tap in consumers.get(id(value), []):
                name = type(tap.layer).__name__
                if name in _PRODUCTS:
                    return True
                if name in _MOVING and not tap.opened:
                    following.append(tap.output)
        frontier = following
    return False


def _is_self_attention(scores):
    """Whether ``scores`` ``(B, [heads,] queries, keys)`` of a token
    sequence has as many queries as keys: not a pooling query attending
    to the tokens (SigLIP's head), nor attention along one axis of a 4-D
    input (MobileViT), which rollout leaves out."""
    shape = scores.shape
    return len(shape) in (3, 4) and shape[-2] == shape[-1]


def rollout_module(graph, modules, unreadable):
    """The model's `AttentionRollout` over its self-attention modules (two
    or more of equal token count), or ``None``."""
    layers = [
        m
        for m in modules
        if isinstance(m.kind, AttentionScores)
        and _is_self_attention(m.tap.output)
    ]
    if len(layers) < 2:
        return None
    counts = {m.path: int(m.tap.output.shape[-1]) for m in layers}
    if len(set(counts.values())) > 1:
        listed = ", ".join(f"{p} ({n})" for p, n in counts.items())
        unreadable[ROLLOUT_PATH] = (
            "Attention rollout multiplies the attention of layers over the "
            f"same tokens; this model's layers differ in token count: "
            f"{listed}. Read each layer's map instead (--layer PATH)."
        )
        return None
    first = layers[0]
    scores = tuple(m.tap.output for m in layers)
    kind = AttentionRollout(first.kind.grid, first.kind.extra)
    # The tap's "layer" is the kind: no Keras layer, so no Grad-CAM
    # candidate, and ``explain-attn layers`` shows "AttentionRollout".
    tap = Tap(ROLLOUT_PATH, kind, scores, scores[-1])
    return AttentionModule(
        ROLLOUT_PATH,
        kind,
        tap,
        shape=first.shape,
        value_range=ValueRange(0.0, 1.0, True, True, "rollout"),
        found_by=f"attention rollout over {len(layers)} layers",
    )
