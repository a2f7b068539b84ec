"""Every attention module of a model, found by what it does.

Attention in ConvNets is, almost always, features multiplied by a gate: a
tensor that a squashing function bounds (`explain_attn.attention.ranges`).
We read the model's flat graph (`explain_attn.graph`), which holds
every call of ``model.operations``, `keras.ops` included, with nested
models and Sequential models opened, and look at each multiply (the
``Multiply`` layer or the ``*`` operation): one input is the features
``(B, H, W, C)``, another a gate in [0, 2] whose shape says what it is:

- ``(H, W, 1)``: spatial (CBAM's spatial branch, Attention U-Net gates),
  kind `SpatialGate`;
- ``(1, 1, C)``: channel (squeeze-and-excitation, ECA, CBAM's channel
  branch), kind `ChannelGate`;
- ``(H, 1, C)`` and ``(1, W, C)``: coordinate attention, kind `AxisGates`;
- ``(H, W, C)``: a full-shape mask (residual attention's ``(1 + M) * T``),
  kind `FullGate`, whose map is the mean over channels.

A gate computed element-wise from the very tensor it multiplies (swish,
hard-swish) is an activation function, not attention, and is skipped.
Self-attention in its forms (Keras attention layers, hand-written
softmax-then-matmul, attention pooling, rollout) is found by
`explain_attn.attention.tokens`. Layers with the attention protocol (ours)
and single-channel sigmoid layers are found per layer by
`explain_attn.attention.kinds.find_kind`.

Through layer boundaries: the flat graph opens subclassed layers, nested
subclassed models and ``Lambda`` layers by tracing their calls into their
parts (`explain_attn.tracing`), so a squeeze-and-excitation written
inside a keras-hub block is found at ``block/squeeze_excite/gate`` and
read in the same forward pass as every other map.

Why the flat graph: Keras 3 exposes a functional model's calls only through
private node structures; the flat graph records each call's arguments and
outputs while rebuilding the forward pass with public APIs
(`keras.models.clone_model`'s ``call_function``), so this module reads only
public objects (`keras.KerasTensor`, layer configs, operation class names).
"""

from explain_attn.attention.fused import fused_attention_modules
from explain_attn.attention.kinds import (
    AttentionModule,
    AxisGates,
    ChannelGate,
    FullGate,
    SpatialGate,
    find_kind,
)
from explain_attn.attention.ranges import (
    KEEPING_RANGE,
    ValueRange,
    is_gate_range,
    value_range,
)
from explain_attn.attention.tokens import (
    attention_layer_modules,
    rollout_module,
    softmax_modules,
)
from explain_attn.graph import Tap, model_state

__all__ = ["attention_module", "discover_modules", "unreadable_attention"]

_ELEMENTWISE = {
    "Add",
    "Subtract",
    "Multiply",
    "Divide",
    "TrueDivide",
    "ReLU",
    "Activation",
    "Sigmoid",
    "HardSigmoid",
    "Relu6",
    "Relu",
    "Tanh",
    "Identity",
    "Cast",
    "Softmax",
}
"""Calls that compute each output value from the same position's input."""


def discover_modules(model):
    """Every attention module of ``model``, in call order, found once.

    Args:
        model: A functional or built Sequential `keras.Model` (nested
            models are searched), or its `explain_attn.graph.ModelState`
            (whose modules are found once).

    Returns:
        A list of `explain_attn.attention.kinds.AttentionModule`, with
        ``shape``, ``value_range``, ``found_by`` and ``applied_at`` set.
    """
    return list(_discovered(model_state(model))[0])


def _discovered(state):
    """``(modules, reasons)`` of a `ModelState`, kept in it."""
    if state.discovered is None:
        state.discovered = _discover(state.graph)
    return state.discovered


def unreadable_attention(model, path):
    """Why the attention at ``path`` has no map, or ``None``.

    Attention discovery saw but cannot read: a Keras attention layer or a
    softmax over tokens that fit no grid, the rollout of layers of
    different token counts (``"attention_rollout"``), or a part of a
    subclassed layer or ``Lambda`` whose call could not be traced
    (``outer/part``).
    """
    state = model_state(model)
    reasons = _discovered(state)[1]
    if path in reasons:
        return reasons[path]
    for outer, failure in state.graph.untraced.items():
        if path.startswith(f"{outer}/"):
            return (
                f"Layer {outer!r} ({failure.class_name}) is a custom layer "
                "whose call could not be traced into its parts "
                f"({failure.reason}), so attention inside it cannot be "
                "read. Write its call with keras.ops and Keras layers, or "
                f"read the layer's output as a map (--layer {outer})."
            )
    return None


def attention_module(model, path):
    """The attention module of ``model`` at ``path``, or ``None``."""
    return next((m for m in discover_modules(model) if m.path == path), None)


def _discover(graph):
    """``(modules in call order, {path: why it has no map})`` of a model's
    `FlatGraph`."""
    unreadable = {}
    found = {}
    for tap in graph.taps.values():
        kind = find_kind(tap)
        if kind is not None:
            found[tap.path] = _layer_module(graph, tap, kind)
    sources = set()
    for module, source in _gated_multiplies(graph):
        existing = found.get(module.path)
        if existing is None or (
            isinstance(existing.kind, SpatialGate) and not existing.applied_at
        ):
            found[module.path] = module
        if source != module.path:
            sources.add(source)
    for source in sources:
        # A sigmoid layer whose gate reaches a multiply through upsampling:
        # the module is the gate that is multiplied, not its low-res source.
        module = found.get(source)
        if module is not None and isinstance(module.kind, SpatialGate):
            if not module.applied_at:
                del found[source]
    tokens = attention_layer_modules(graph, unreadable)
    tokens += fused_attention_modules(graph, unreadable)
    tokens += softmax_modules(graph, unreadable)
    found.update((module.path, module) for module in tokens)
    order = {path: index for index, path in enumerate(graph.taps)}
    modules = sorted(found.values(), key=lambda module: order[module.path])
    rollout = rollout_module(graph, modules, unreadable)
    if rollout is not None:
        # A per-model map: a tap of its own, so that it is read by path.
        graph.taps[rollout.path] = rollout.tap
        modules.append(rollout)
    return modules, unreadable


def _shape(tensor):
    return tuple(tensor.shape[1:])


def _layer_module(graph, tap, kind):
    source = kind.source(tap)
    parts_shape = None
    if kind.spatial and getattr(tap.output, "shape", None) is not None:
        parts_shape = (*tuple(tap.output.shape[1:3]), 1)
    if not kind.spatial:
        channels = tap.output.shape[-1]
        parts_shape = (1, 1, channels)
    found = value_range(graph, source) if source is tap.output else None
    return AttentionModule(
        tap.path,
        kind,
        tap,
        shape=parts_shape,
        value_range=found or ValueRange(0.0, 1.0, False, False, "sigmoid"),
        found_by=f"{type(tap.layer).__name__} layer",
    )


def _is_multiply(tap):
    return type(tap.layer).__name__ == "Multiply"


def _gate_axes(features, gate):
    """``"spatial"``, ``"channel"``, ``"full"``, ``"height"``, ``"width"``
    or ``None``.

    ``features`` and ``gate`` are shapes without the batch, ``(H, W, C)``.
    """
    if len(features) != 3 or len(gate) != 3:
        return None
    ones = tuple(size == 1 for size in gate)
    return {
        (False, False, True): "spatial",
        (False, False, False): "full",
        (True, True, False): "channel",
        (False, True, False): "height",
        (False, True, True): "height",
        (True, False, False): "width",
        (True, False, True): "width",
    }.get(ones)


def _computed_from(graph, gate, features, depth=8):
    """Whether ``gate`` is an element-wise function of ``features``."""
    frontier = [gate]
    for _ in range(depth):
        following = []
        for tensor in frontier:
            if tensor is features:
                return True
            tap = graph.producer(tensor)
            if tap is not None and type(tap.layer).__name__ in _ELEMENTWISE:
                following.extend(tap.tensors)
        if not following:
            return False
        frontier = following
    return False


def _split(graph, tap):
    """``(features, [(gate, range)])`` of a multiply, or ``None``."""
    tensors = tap.tensors
    output = _shape(tap.output) if hasattr(tap.output, "shape") else ()
    if len(tensors) < 2 or len(output) != 3:
        return None
    ranges = [value_range(graph, tensor) for tensor in tensors]
    candidates = [
        index
        for index, tensor in enumerate(tensors)
        if _shape(tensor) == output and not is_gate_range(ranges[index])
    ]
    if not candidates:
        return None
    features = tensors[candidates[0]]
    gates = [
        (tensor, found)
        for index, (tensor, found) in enumerate(
            zip(tensors, ranges, strict=True)
        )
        if index != candidates[0]
        and len(tensor.shape) == 4
        and is_gate_range(found)
        and not _computed_from(graph, tensor, features)
    ]
    return features, gates


_GATE_KINDS = {"spatial": SpatialGate, "channel": ChannelGate, "full": FullGate}


def _gated_multiplies(graph):
    """Yields ``(module, origin path)`` for each gate found in a multiply."""
    pending = {}  # id(multiply output) -> (axis, gate, range, tap).
    for tap in list(graph.taps.values()):
        if not _is_multiply(tap):
            continue
        split = _split(graph, tap)
        if split is None:
            continue
        features, gates = split
        axes = []
        for gate, found in gates:
            axis = _gate_axes(_shape(features), _shape(gate))
            producer = graph.producer(gate)
            if axis in _GATE_KINDS:
                kind = _GATE_KINDS[axis]()
                module = AttentionModule(
                    producer.path,
                    kind,
                    _gate_tap(producer, gate),
                    shape=_shape(gate),
                    value_range=found,
                    found_by=f"{_origin(found)} gate × features",
                    applied_at=tap.path,
                )
                yield module, _gate_source(graph, gate)
            elif axis is not None:
                axes.append((axis, gate, found, producer))
        earlier = pending.pop(id(features), None)
        if earlier is not None and len(axes) == 1:
            axes.insert(0, earlier[0])
        if len(axes) == 2 and {a[0] for a in axes} == {"height", "width"}:
            yield (
                _axis_module(tap, earlier[2] if earlier else features, axes),
                axes[0][3].path,
            )
        elif len(axes) == 1:
            pending[id(tap.output)] = (axes[0], tap, features)
        elif earlier is not None:
            pending[id(features)] = earlier
    for entry, tap, features in pending.values():
        # An axis gate without its partner: broadcast over the other axis.
        yield _axis_module(tap, features, [entry]), entry[3].path


def _origin(found):
    """What bounded a gate, in words."""
    if found.origin == "relu" and (found.low, found.high) == (0.0, 1.0):
        return "hard sigmoid (bounded ReLU, scaled)"
    return found.origin


def _gate_source(graph, gate):
    """Path of the call that bounded ``gate``, before reshapes, upsampling
    or pooling."""
    tap = graph.producer(gate)
    while tap is not None and type(tap.layer).__name__ in KEEPING_RANGE:
        tensors = tap.tensors
        if len(tensors) != 1:
            break
        earlier = graph.producer(tensors[0])
        if earlier is None:
            break
        tap = earlier
    return None if tap is None else tap.path


def _gate_tap(producer, gate):
    if producer.output is gate:
        return producer
    return Tap(producer.path, producer.layer, producer.input, gate)


def _axis_module(tap, features, axes):
    """An `AxisGates` module: both gates, or one repeated along the other
    axis. Nothing is added to the graph: the kind combines the gates."""
    axes = sorted(axes, key=lambda entry: entry[0])  # height, width.
    found = axes[0][2]
    for entry in axes[1:]:
        found = _product_range(found, entry[2])
    first = axes[0][3]
    names = " and ".join(f"{a[0]} gate {a[3].path}" for a in axes)
    grid = tuple(_shape(features)[:2])
    gates = tuple(entry[1] for entry in axes)
    return AttentionModule(
        first.path,
        AxisGates(grid),
        Tap(first.path, first.layer, gates, gates[0]),
        shape=(*grid, 1),
        value_range=found,
        found_by=f"{_origin(found)} {names} × features",
        applied_at=tap.path,
    )


def _product_range(first, second):
    low, high = first.low * second.low, first.high * second.high
    if first.low < 0 or second.low < 0:
        return first
    return ValueRange(
        low,
        high,
        first.low_closed and second.low_closed,
        first.high_closed and second.high_closed,
        first.origin,
    )
