"""Attention kinds: what a layer's map is, how to replace it, its weights.

Every attention module explain-attn can read is an `AttentionModule`: a
layer call of the model's flat graph (`explain_attn.models.graph`) and the
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

Kinds are matched in the order of `KINDS`; the first that matches wins. A
new kind of attention is a new `AttentionKind` subclass added to `KINDS`.
"""

import abc
import dataclasses

__all__ = [
    "KINDS",
    "AttentionKind",
    "AttentionModule",
    "ChannelLayer",
    "SigmoidGate",
    "SpatialLayer",
    "find_kind",
]


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


class SigmoidGate(AttentionKind):
    """A plain-Keras gate: a 4-D, single-channel output with a sigmoid.

    Such as ``Conv2D(1, 7, activation="sigmoid")`` in a hand-written CBAM.
    The gate's output is the map; replacing it replaces the output wherever
    the model uses it.
    """

    name = "gate"
    description = "single-channel sigmoid gate: its output"
    intervention_note = (
        "A plain-Keras gate: its output (the map) is replaced wherever the "
        "model uses it; 'inverted' and 'mask' assume it multiplies "
        "features, as a sigmoid gate usually does."
    )

    def matches(self, tap):
        shape = getattr(tap.output, "shape", None)
        if shape is None or len(shape) != 4 or shape[-1] != 1:
            return False
        return tap.layer.get_config().get("activation") == "sigmoid"

    def source(self, tap):
        return tap.output

    def parts(self, tap, source):
        return None, source


KINDS = [SpatialLayer(), ChannelLayer(), SigmoidGate()]
"""The kinds tried, in order, by `find_kind`."""


def find_kind(tap):
    """Returns the first kind of `KINDS` that matches ``tap``, or ``None``."""
    return next((kind for kind in KINDS if kind.matches(tap)), None)


@dataclasses.dataclass(frozen=True)
class AttentionModule:
    """One attention module found in a model.

    Attributes:
        path: The layer's path (``outer/inner`` in nested models).
        kind: Its `AttentionKind`.
        tap: Its layer call in the model's flat graph.
    """

    path: str
    kind: AttentionKind
    tap: object

    def source(self):
        """The graph tensor to fetch for this module."""
        return self.kind.source(self.tap)

    def parts(self, source):
        """``(features, weights)`` of the module for a fetched ``source``."""
        return self.kind.parts(self.tap, source)
