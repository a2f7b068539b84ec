"""A layer's own call, traced into a functional graph of its parts.

Keras records a functional model's layer calls, but a subclassed layer (a
keras-hub block, a user's ``SqueezeExcite`` layer), a ``Lambda`` or a
subclassed model nested in it is one opaque call: its sublayers and the
`keras.ops` it uses leave no node. To see inside, we call the layer's
``call`` method itself on fresh `keras.Input` tensors. Its sublayers and
`keras.ops` then run symbolically, each leaving a node, and
``keras.Model(inputs, outputs)`` holds them as a functional graph of the
*same* sublayer objects (weights shared, nothing copied or changed).
`explain_attn.graph` flattens that graph like a nested model, so the
parts are taps with paths ``outer/part``, read in the same forward pass.

A trace is used only when it reproduces the layer: the traced graph and
the layer are run on the same random input (a batch of two) and must
agree. `explain_attn.graph` checks the whole flattened model at
once and, only if it disagrees, every traced layer on its own. A call
that cannot be traced (TensorFlow functions applied to symbolic tensors,
Python decisions on the batch size, the value of a tensor) or that traces
to something else stays one opaque call, and the reason is kept
(`TraceFailure`) so that errors can name it.

A call may return ``None`` or a constant among its outputs (keras-hub's
DeiT blocks return ``(y, None)``, its encoder empty tensors for the
attention scores it was not asked for). Keras refuses both as outputs
of a graph, and refuses ``None`` as the output of a layer called
symbolically inside the call being traced. The trace keeps the symbolic
outputs only and puts the others back where they were (`trace_call`'s
``restore``); while a call is traced, a layer returning ``None`` among
its outputs records the others only (`without_none`).
"""

import contextlib
import dataclasses
import inspect
import re
import sys
import warnings

import keras
import numpy as np
import tensorflow as tf

from explain_attn.batching import (
    SENTINEL,
    holds_unknown_size,
    rebatch,
    sentinel_shape,
)

__all__ = [
    "TraceFailure",
    "TracedPart",
    "is_traceable",
    "operation_name",
    "part_names",
    "same_outputs",
    "tensor_outputs",
    "trace_call",
    "without_none",
]

_TRACE_ERRORS = (
    AttributeError,
    IndexError,
    KeyError,
    NotImplementedError,
    RuntimeError,
    TypeError,
    ValueError,
    tf.errors.OpError,
)
"""What running user code on symbolic tensors raises when it cannot be
traced (TensorFlow functions refuse `keras.KerasTensor` arguments with a
``ValueError`` or ``TypeError``; unknown batch sizes give ``None`` shapes)."""


_READ_WHOLE = (
    keras.layers.MultiHeadAttention,
    keras.layers.Attention,
    keras.layers.AdditiveAttention,
)
"""Layers read as a whole, subclasses included: their scores are asked
for (``return_attention_scores=True``), not found inside."""


@dataclasses.dataclass(frozen=True)
class TraceFailure:
    """Why a layer's call stayed opaque.

    Attributes:
        class_name: The layer's class name.
        reason: One line, at most 200 characters.
    """

    class_name: str
    reason: str


def is_traceable(layer):
    """Whether discovery should look inside ``layer``'s call.

    Lambdas and layers or models defined outside Keras itself (user code,
    keras-hub) are; Keras' own layers (whose calls are one operation),
    Keras' attention layers and their subclasses (read as a whole) and
    layers with explain-attn's attention protocol (``attention_parts``)
    are not.
    """
    if not isinstance(layer, keras.layers.Layer):
        return False
    if isinstance(layer, keras.layers.InputLayer):
        return False
    if callable(getattr(layer, "attention_parts", None)):
        return False
    if isinstance(layer, _READ_WHOLE):
        return False
    if isinstance(layer, keras.layers.Lambda):
        return True
    return not type(layer).__module__.startswith("keras.")


def part_names(layer):
    """``{id(sublayer): name}`` from the attributes ``layer`` keeps them in.

    ``self.se_reduce = Conv2D(...)`` gives ``"se_reduce"``; a list
    ``self.blocks = [...]`` gives ``"blocks_0"``, ``"blocks_1"``... Names
    Keras generates (``conv2d_17``) depend on how many layers a process
    made before; attribute names do not.
    """
    names = {}
    for attribute, value in vars(layer).items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, keras.layers.Layer):
            names.setdefault(id(value), attribute)
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    names.setdefault(id(item), f"{attribute}_{index}")
    return names


def operation_name(operation):
    """``"multiply"`` for a ``Multiply`` operation: its class, snake case."""
    name = type(operation).__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def trace_call(layer, args, kwargs, *, check=True, rows=None):
    """Traces ``layer.call(*args, **kwargs)`` into a functional model.

    Args:
        layer: A built layer (see `is_traceable`).
        args: The call's positional arguments (symbolic tensors and
            constants), as the flat graph passes them.
        kwargs: Its keyword arguments.
        check: Whether to run the trace and the layer on a random batch
            and keep the trace only if they agree (``False`` when the
            caller checks the whole model at once, `same_outputs`).
        rows: The rows its tensor arguments had where the enclosing
            layer was traced with a known batch size (`rebatch`), or
            ``None``.

    Returns:
        ``(model, tensors, sizes, restore)``: a functional `keras.Model`
        of the layer's parts whose inputs stand for ``tensors`` (the
        symbolic tensors among the arguments, in order), the rows of its
        layers' arguments if it was traced with a known batch size (for
        their own traces; else ``{}``) and a function giving the call's
        outputs from the model's (its ``None`` and constant outputs put
        back); or a `TraceFailure`.
    """
    tensors = [
        value
        for value in keras.tree.flatten((list(args), kwargs))
        if isinstance(value, keras.KerasTensor)
    ]
    if not tensors:
        return TraceFailure(type(layer).__name__, "no tensor argument")
    try:
        (model, restore), sizes = _traced_model(
            layer, args, kwargs, tensors, rows
        )
        agrees = not check or _reproduces(
            layer,
            (model, restore),
            (tensors, args, kwargs),
            2 * _rows_per_image(rows),
        )
    except _TRACE_ERRORS as error:
        return TraceFailure(type(layer).__name__, _one_line(error))
    if not agrees:
        return TraceFailure(
            type(layer).__name__,
            "its call traced symbolically computes other values than the "
            "layer (a decision on a tensor's value or the batch size)",
        )
    return model, tensors, sizes, restore


def _rows_per_image(rows):
    """Rows per image of a call's first tensor traced with `SENTINEL`
    images (``rows``, see `trace_call`; Swin's window attention: its
    windows); 1 when unknown."""
    traced = [r for r in rows or () if r is not None]
    if not traced or traced[0] % SENTINEL:
        return 1
    return traced[0] // SENTINEL


def _traced_model(layer, args, kwargs, tensors, rows):
    """The functional model of ``layer.call`` on fresh inputs shaped like
    ``tensors``; if that fails with an unknown batch size, traced with a
    known one and made general (`explain_attn.batching`)."""
    unknown = any(t.shape and t.shape[0] is None for t in tensors)
    try:
        traced = _symbolic_call(
            layer, args, kwargs, tensors, lambda t: tuple(t.shape)
        )
    except _TRACE_ERRORS:
        if not unknown:
            raise
        first = sys.exc_info()[1]
    else:
        if not (unknown and holds_unknown_size(traced[0])):
            return traced, {}
        first = ValueError("a shape holds the unknown batch size")
    rows = rows or [None] * len(tensors)
    known = {id(t): r for t, r in zip(tensors, rows, strict=False)}

    def shaped(tensor):
        return sentinel_shape(tensor.shape, known.get(id(tensor)))

    try:
        traced, restore = _symbolic_call(layer, args, kwargs, tensors, shaped)
        with warnings.catch_warnings():
            # As in `_symbolic_call`: the user's layers, run again.
            warnings.filterwarnings(
                "ignore", category=UserWarning, module="keras"
            )
            model, sizes = rebatch(traced, tensors)
        return (model, restore), sizes
    except _TRACE_ERRORS:
        # The first error is the one the user's code would give.
        raise first from None


def _symbolic_call(layer, args, kwargs, tensors, shaped):
    """``layer.call`` on new `keras.Input` tensors of shapes
    ``shaped(tensor)``, as a functional model of its symbolic outputs, and
    the function that puts its other outputs back (`_restorer`)."""
    fresh = {
        id(t): keras.Input(batch_shape=shaped(t), dtype=t.dtype)
        for t in tensors
    }

    def replace(value):
        return fresh.get(id(value), value)

    with warnings.catch_warnings():
        # Keras' warnings about the user's layer (keras-hub's Swin blocks
        # pass a ``mask`` their attention does not support) are not ours.
        warnings.filterwarnings("ignore", category=UserWarning, module="keras")
        with without_none():
            outputs = layer.call(
                *keras.tree.map_structure(replace, list(args)),
                **keras.tree.map_structure(replace, _accepted(layer, kwargs)),
            )
    inputs = [fresh[id(t)] for t in tensors]
    leaves = keras.tree.flatten(outputs)
    symbolic = [v for v in leaves if isinstance(v, keras.KerasTensor)]
    if len(symbolic) == len(leaves):
        return keras.Model(inputs, outputs), _same
    if not symbolic:
        raise ValueError("it returns no tensor computed from its inputs")
    return keras.Model(inputs, symbolic), _restorer(outputs)


def _accepted(layer, kwargs):
    """``kwargs`` less ``training``, where ``layer.call`` does not take
    it: Keras' ``__call__`` drops it then (keras-hub's MobileNetV5 passes
    it to every part)."""
    if "training" not in kwargs:
        return kwargs
    parameters = inspect.signature(layer.call).parameters
    if "training" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    ):
        return kwargs
    return {k: v for k, v in kwargs.items() if k != "training"}


def _same(outputs):
    return outputs


def _restorer(outputs):
    """``restore(model_outputs)``: ``outputs``' structure, its symbolic
    leaves taken from the model's outputs in order, the others (``None``,
    constants) as they were."""
    leaves = keras.tree.flatten(outputs)

    def restore(values):
        values = iter(values if isinstance(values, list) else [values])
        return keras.tree.pack_sequence_as(
            outputs,
            [
                next(values) if isinstance(v, keras.KerasTensor) else v
                for v in leaves
            ],
        )

    return restore


@contextlib.contextmanager
def without_none():
    """While active, a layer called on symbolic tensors that returns
    ``None`` among its outputs (keras-hub's DeiT blocks: ``(y, None)``)
    records a graph node of its other outputs, where Keras raises
    "All operation outputs must be tensors". Keras' runner pairs a node's
    outputs with the call's flattened ones in order, so a ``None`` before
    a tensor must be dropped there too (`tensor_outputs`).

    Keras creates the node at the end of ``Layer.__call__`` with the
    ``Node`` class that ``keras.src.layers.layer`` imported; that name
    is replaced for the duration and restored after.
    """
    try:
        from keras.src.layers import layer as module  # noqa: PLC0415
    except ImportError:
        module = None
    original = getattr(module, "Node", None)
    if original is None:  # Another Keras layout: ``None`` stays refused.
        yield
        return

    class _Node(original):
        def __init__(
            self, operation, call_args=None, call_kwargs=None, outputs=None
        ):
            if outputs is not None:
                outputs = tensor_outputs(outputs)
            super().__init__(operation, call_args, call_kwargs, outputs)

    module.Node = _Node
    try:
        yield
    finally:
        module.Node = original


def tensor_outputs(outputs):
    """``outputs`` without its ``None`` leaves, flattened if it had any."""
    leaves = keras.tree.flatten(outputs)
    if all(v is not None for v in leaves):
        return outputs
    return [v for v in leaves if v is not None]


def _reproduces(layer, traced, call, batch):
    """Whether ``traced`` (a model and its `restore` function) computes
    what ``layer`` does on a random input of ``batch`` rows (two images'
    worth: Swin's window attention takes whole images' windows)."""
    model, restore = traced
    tensors, args, kwargs = call

    def called(values):
        concrete = {id(t): v for t, v in zip(tensors, values, strict=True)}

        def replace(value):
            return concrete.get(id(value), value)

        return layer(
            *keras.tree.map_structure(replace, list(args)),
            **keras.tree.map_structure(replace, kwargs),
        )

    return same_outputs(
        called,
        lambda values, training: restore(model(values, training=training)),
        tensors,
        batch=batch,
    )


def same_outputs(first, second, tensors, *, batch=2):
    """Whether ``first(values)`` and ``second(values)`` agree (``rtol``
    1e-4, ``atol`` 1e-5) on random values shaped like ``tensors``; ``True``
    when a size other than the batch is unknown (nothing to run).

    A batch of two (images): a trace that baked the batch size in does
    not agree.
    """
    shapes = [(batch, *tensor.shape[1:]) for tensor in tensors]
    if any(size is None for shape in shapes for size in shape):
        return True
    rng = np.random.default_rng(0)
    values = [
        rng.standard_normal(shape).astype(tensor.dtype)
        if "float" in str(tensor.dtype)
        else np.zeros(shape, dtype=tensor.dtype)
        for shape, tensor in zip(shapes, tensors, strict=True)
    ]
    expected = keras.tree.flatten(first(values))
    traced = keras.tree.flatten(second(values, training=False))
    if len(expected) != len(traced):
        return False
    return all(
        (a is None and b is None)
        or (
            a is not None
            and b is not None
            and np.allclose(
                keras.ops.convert_to_numpy(a),
                keras.ops.convert_to_numpy(b),
                rtol=1e-4,
                atol=1e-5,
            )
        )
        for a, b in zip(expected, traced, strict=True)
    )


def _one_line(error):
    """The first line of ``error``, at most 200 characters."""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}"[:200]


class TracedPart(keras.layers.Layer):
    """Calls one part of a traced layer (same object, same weights).

    The flat graph becomes a `keras.Model` to read maps, and Keras refuses
    a model where two operations share a name; parts of different blocks
    often do (every keras-hub encoder block has its ``dropout``). The part
    is called through this layer, whose name is its unique path; the
    user's layer keeps its name and is never changed. It is never saved.

    Args:
        part: The part (a layer of the traced layer).
        path: Its path in the flat graph.
        keyword: For a part called with keywords only (``mha(query=x,
            value=x)``), the keyword of the first argument, which Keras
            needs positional.
        options: The call's keyword arguments that are not tensors
            (``use_causal_mask=False``), passed on every call.
    """

    def __init__(self, part, path, keyword=None, options=None):
        super().__init__(name="explain_attn." + path.replace("/", "."))
        self.part = part
        self.keyword = keyword
        self.options = dict(options or {})

    def compute_output_spec(self, inputs, *args, training=None, **kwargs):
        # The part's own (cheap) output spec, not a scratch run of `call`.
        kwargs.update(self.options)
        if self.keyword is not None:
            return self.part.compute_output_spec(
                *args, **{self.keyword: inputs}, **kwargs
            )
        return self.part.compute_output_spec(inputs, *args, **kwargs)

    def call(self, inputs, *args, training=None, **kwargs):
        kwargs.update(self.options)
        if training is not None:
            kwargs["training"] = training
        if self.keyword is not None:
            return self.part(*args, **{self.keyword: inputs}, **kwargs)
        return self.part(inputs, *args, **kwargs)
