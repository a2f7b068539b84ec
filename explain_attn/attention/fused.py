"""Fused dot-product attention: ``keras.ops.nn.dot_product_attention``.

keras-hub's DINOv3 attends with the fused operation
``ops.nn.dot_product_attention(q, k, v, mask=..., scale=...)``: its
softmax never appears in the graph, so neither the softmax forms of
`explain_attn.attention.tokens` nor a Keras attention layer match. The
operation's own query and key are in the flat graph, though: its scores
are recomputed beside the model from them, as Keras computes them
(``softmax(scale · q kᵀ + bias)``, masked positions and a causal mask
excluded, logits soft-capped where asked), by `_FusedScores`. They are
then read as a Keras attention layer's scores
(`explain_attn.attention.kinds.AttentionScores`, kind
``dot_product_attention``): class-token rows where the tokens carry one,
rollout over a stack of them.

The grid: the nearest token sequence ``(B, N, C)`` upstream of the key
with the key's ``N`` tokens (the attention's input, before the heads are
split off), then `explain_attn.attention.tokens.token_grid` from there.
"""

import inspect
import math

import keras

from explain_attn.attention.kinds import AttentionScores
from explain_attn.attention.tokens import (
    scores_module,
    token_grid,
    upstream,
)

__all__ = ["fused_attention_modules"]

NAME = "dot_product_attention"
"""The kind's name (the operation's)."""


def fused_attention_modules(graph, unreadable):
    """`AttentionScores` modules of every ``dot_product_attention`` call
    whose keys lie on a grid; the others' reasons go to ``unreadable``."""
    modules = []
    for tap in list(graph.taps.values()):
        if type(tap.layer).__name__ != "DotProductAttention":
            continue
        arguments = _arguments(tap)
        key = arguments.get("key")
        if key is None or len(key.shape) != 4 or key.shape[1] is None:
            unreadable[tap.path] = _no_grid(tap, key)
            continue
        found = token_grid(graph, _tokens(graph, key), int(key.shape[1]))
        if found is None:
            unreadable[tap.path] = _no_grid(tap, key)
            continue
        scores = _FusedScores(tap.layer, tap.path)(
            arguments["query"],
            key,
            **{k: arguments.get(k) for k in ("bias", "mask", "scale")},
        )
        kind = AttentionScores(*found, "class" if found[1] else "mean", NAME)
        modules.append(scores_module(tap, key, scores, kind, NAME))
    return modules


def _arguments(tap):
    """``{name: value}`` of the call's arguments, by the operation's
    ``call`` signature (``query``, ``key``, ``value``, ``bias``, ``mask``,
    ``scale``)."""
    signature = inspect.signature(tap.layer.call)
    try:
        bound = signature.bind(*tap.arguments, **dict(tap.keywords))
    except TypeError:
        return {}
    return dict(bound.arguments)


def _tokens(graph, key):
    """The nearest ``(B, N, C)`` tensor upstream of ``key`` ``(B, N,
    heads, d)`` with as many tokens, else ``key``."""
    sequences = upstream(graph, key, rank=3)
    return next((t for t in sequences if t.shape[1] == key.shape[1]), key)


def _no_grid(tap, key):
    shape = None if key is None else tuple(key.shape)[1:]
    return (
        f"dot_product_attention {tap.path!r} attends over keys of shape "
        f"{shape}, whose tokens fit no grid of feature-map positions "
        "(keys (batch, tokens, heads, size), h×w tokens after at most a "
        "few class or register tokens), so it has no attention map. "
        "Choose another layer (explain-attn layers MODEL lists them)."
    )


class _FusedScores(keras.layers.Layer):
    """The attention weights ``(B, heads, queries, keys)`` of a
    ``dot_product_attention`` call, from its query and key, as Keras
    computes them. Never saved.

    Args:
        operation: The ``DotProductAttention`` operation (its
            ``is_causal`` and ``attn_logits_soft_cap``).
        path: The call's path, for the layer's name.
    """

    def __init__(self, operation, path):
        super().__init__(name=f"{path.replace('/', '.')}_explain_attn_scores")
        self.is_causal = bool(getattr(operation, "is_causal", False))
        self.soft_cap = getattr(operation, "attn_logits_soft_cap", None)

    def call(self, query, key, bias=None, mask=None, scale=None):
        ops = keras.ops
        if scale is None:
            scale = 1.0 / math.sqrt(query.shape[-1])
        logits = ops.einsum("bqhd,bkhd->bhqk", query, key)
        logits = ops.multiply(logits, ops.cast(scale, logits.dtype))
        if self.soft_cap is not None:
            cap = ops.cast(self.soft_cap, logits.dtype)
            logits = cap * ops.tanh(logits / cap)
        if bias is not None:
            logits = logits + ops.cast(bias, logits.dtype)
        allowed = None if mask is None else ops.cast(mask, "bool")
        if self.is_causal:
            queries, keys = logits.shape[-2], logits.shape[-1]
            causal = ops.tril(ops.ones((queries, keys), dtype="bool"))
            allowed = causal if allowed is None else allowed & causal
        if allowed is not None:
            logits = ops.where(allowed, logits, ops.full_like(logits, -1e9))
        return ops.softmax(logits, axis=-1)
