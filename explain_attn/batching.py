"""Tracing a call whose code needs the batch size as a number.

keras-hub's Swin Transformer, MiT (SegFormer's encoder) and the patch
embeddings of ViT, DeiT and DINOv2 write ``B = ops.shape(x)[0]``, then
``ops.reshape(x, (B, h, w, c))`` or ``ops.tile(token, (B, 1, 1))``. On a
`keras.Input` of unknown batch size ``B`` is ``None`` and the call fails,
so the layer stayed opaque. Two ways out: make ``ops.shape`` symbolic
(every operation taking a shape would then have to accept a symbolic size,
which Keras' operations do not, and ``ops.tile`` of a weight runs eagerly,
outside any graph), or trace with a known batch size and make the graph
general again. We do the second, only for a call that fails with an
unknown batch size or whose trace holds it as ``None`` in a shape (Keras
accepts ``reshape(x, (None, n, c))`` symbolically; it cannot run). What
traced before is traced as before.

1. The call is traced on inputs of batch size `SENTINEL` (97, a prime
   that image models' sizes are not multiples of), so every size the code
   derives from the batch is a multiple of 97. A layer inside a layer
   traced so is traced with the sizes its inputs had in that trace (Swin's
   window attention sees ``97 × windows`` rows and divides by the number
   of windows): `rebatch` returns them.
2. The traced graph is run again on inputs of unknown batch size
   (`rebatch`). An operation holding such a size ``e`` in a shape (a
   ``Reshape``'s target, a ``Tile``'s repeats) runs as a
   copy that puts ``e × b / T`` there when it runs, ``b`` and ``T`` being
   the first input's rows when it runs and when traced; a constant the
   code made for the whole batch (the class token tiled ``B`` times,
   computed eagerly from a weight) is tiled from its first rows, once its
   rows are checked to repeat.

Sizes are rewritten wherever they are in a shape (ViTDet's
``reshape(qkv, (3, B · heads, n, d))``); a constant passed to a layer
(SigLIP's pooling probe repeated ``B`` times as its query) becomes a
`BatchConstant` call. A constant whose rows differ, or a size that is a
multiple of 97 without coming from the batch, is left or rewritten
wrongly: the trace then computes other values than the layer at a batch
of two, and `explain_attn.tracing`'s check keeps the layer opaque. A layer
whose rows are several per image (Swin's attention over 4 windows of
each image) is traced too, and checked on two images' rows; its softmax
is a map per window, which `explain_attn.attention.windows` puts back
in the image.
"""

import math

import keras
import numpy as np

__all__ = [
    "SENTINEL",
    "holds_unknown_size",
    "rebatch",
    "sentinel_shape",
]

SENTINEL = 97
"""The batch size a call is traced with when it needs a number."""


def sentinel_shape(shape, traced=None):
    """``shape`` with ``traced`` (default `SENTINEL`) for an unknown batch
    size."""
    shape = tuple(shape)
    if shape and shape[0] is None:
        return (traced or SENTINEL, *shape[1:])
    return shape


def holds_unknown_size(model):
    """Whether an operation of ``model`` holds ``None`` in a shape
    (``ops.reshape(x, (B, n, c))`` traced with ``B = None``): Keras accepts
    it symbolically, but it cannot run."""
    for operation in model.operations:
        if isinstance(operation, keras.layers.Layer):
            continue
        for value in _attributes(operation).values():
            if (
                isinstance(value, list | tuple)
                and None in value
                and all(v is None or _is_size(v) for v in value)
            ):
                return True
    return False


def rebatch(model, tensors):
    """Runs ``model``, traced on inputs with batch sizes multiple of
    `SENTINEL`, on new inputs shaped like ``tensors`` (unknown batch).

    Returns:
        ``(model, sizes)``: a functional `keras.Model` of the same layers
        and operations for any batch size, operations and constants
        holding the traced batch size rewritten (see the module's
        description); ``sizes`` maps ``id(operation)`` of each layer and
        operation it calls to the rows of its tensor arguments in the
        trace (an operation rewritten is named by its original).
    """
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype) for t in tensors]
    first = next(
        i for i, t in enumerate(tensors) if t.shape and t.shape[0] is None
    )
    reference, rows = inputs[first], model.inputs[first].shape[0]

    def call(operation, *args, **kwargs):
        if isinstance(operation, keras.layers.Layer):
            # A constant made for the whole batch passed to a layer
            # (SigLIP's probe repeated ``B`` times, as its query).
            args, kwargs = keras.tree.map_structure(
                lambda v: _constant_like(v, reference, rows), (args, kwargs)
            )
            return operation(*args, **kwargs)
        if not _holds_batch((args, kwargs, _attributes(operation))):
            return operation(*args, **kwargs)
        # The traced call's output shapes: Keras cannot infer them again
        # (``reshape(x, (B, -1, h, d))`` of an unknown batch size gives an
        # unknown number of tokens).
        copy = _rebatched(operation, operation.output, rows)
        return copy(*args, batch_like=reference, **kwargs)

    clone = keras.models.clone_model(
        model,
        input_tensors=inputs,
        clone_function=lambda layer: layer,
        call_function=call,
    )
    return clone, _layer_sizes(model)


def _layer_sizes(model):
    """``{id(operation): rows of its tensor arguments}`` in ``model``'s
    graph,
    read by running it again on inputs of its own shapes."""
    sizes = {}

    def call(operation, *args, **kwargs):
        if isinstance(operation, keras.Operation):
            sizes[id(operation)] = tuple(
                v.shape[0] if v.shape else None
                for v in keras.tree.flatten((list(args), kwargs))
                if isinstance(v, keras.KerasTensor)
            )
        return operation(*args, **kwargs)

    keras.models.clone_model(
        model,
        input_tensors=[
            keras.Input(batch_shape=t.shape, dtype=t.dtype)
            for t in model.inputs
        ],
        clone_function=lambda layer: layer,
        call_function=call,
    )
    return sizes


def _attributes(operation):
    return {k: v for k, v in vars(operation).items() if not k.startswith("_")}


def _is_size(value):
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _from_batch(value):
    """Whether ``value`` is a size derived from the traced batch size."""
    return _is_size(value) and value > 0 and value % SENTINEL == 0


def _is_constant(value):
    return (
        not isinstance(value, keras.KerasTensor)
        and hasattr(value, "shape")
        and hasattr(value, "dtype")
        and len(value.shape) > 0
    )


def _holds_batch(value):
    """Whether ``value`` (nested) holds a shape or a constant sized by the
    traced batch (a constant only if its rows repeat: made for the whole
    batch from one item's values)."""
    if _is_constant(value):
        return _from_batch(value.shape[0]) and _repeats(value)
    if isinstance(value, list | tuple):
        if value and all(_is_size(v) for v in value):
            return any(_from_batch(v) for v in value)
        return any(_holds_batch(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_batch(v) for v in value.values())
    return False


def _scaled(size, batch, rows):
    """``size × batch / rows`` in whole numbers (``batch`` may be a
    tensor)."""
    common = math.gcd(int(size), int(rows))
    return batch * (int(size) // common) // (int(rows) // common)


def _substitute(value, batch, rows):
    """``value`` with each traced size ``e`` in first position of a shape
    replaced by ``e × batch / rows``, and constants tiled to as many rows
    from their first ones."""
    if _is_constant(value):
        if not _from_batch(value.shape[0]):
            return value
        first = keras.ops.convert_to_tensor(value)[: value.shape[0] // SENTINEL]
        times = _scaled(SENTINEL, batch, rows)
        return keras.ops.tile(first, (times, *[1] * (len(value.shape) - 1)))
    if isinstance(value, list | tuple):
        if value and all(_is_size(v) for v in value):
            return type(value)(
                _scaled(v, batch, rows) if _from_batch(v) else v for v in value
            )
        return type(value)(_substitute(v, batch, rows) for v in value)
    if isinstance(value, dict):
        return {k: _substitute(v, batch, rows) for k, v in value.items()}
    return value


def _constant_like(value, reference, rows):
    """``value``, or for a constant sized by the traced batch, the tensor
    of a `BatchConstant` call on ``reference``."""
    if _is_constant(value) and _holds_batch(value):
        return BatchConstant(value, rows)(reference)
    return value


class BatchConstant(keras.Operation):
    """A constant made for a traced batch of ``rows`` rows, tiled from its
    first rows to the rows of ``batch_like`` when it runs."""

    def __init__(self, value, rows):
        super().__init__(name="batch_constant")
        self.first = keras.ops.convert_to_tensor(value)[
            : value.shape[0] // SENTINEL
        ]
        self.traced_rows = rows

    def call(self, batch_like):
        times = _scaled(
            SENTINEL, keras.ops.shape(batch_like)[0], self.traced_rows
        )
        ones = [1] * (len(self.first.shape) - 1)
        return keras.ops.tile(self.first, (times, *ones))

    def compute_output_spec(self, batch_like):
        shape = (None, *self.first.shape[1:])
        return keras.KerasTensor(shape, dtype=self.first.dtype)


def _repeats(value):
    """Whether a constant's rows repeat `SENTINEL` times."""
    array = keras.ops.convert_to_numpy(value)
    first = array[: array.shape[0] // SENTINEL]
    return bool(np.array_equal(array, np.concatenate([first] * SENTINEL)))


_CLASSES = {}


def _rebatched(operation, traced, rows):
    """A copy of ``operation`` whose class is a subclass of its own, with
    the same name (discovery reads ``Reshape`` and ``Concatenate`` by their
    class), that rewrites the traced batch size when it runs; ``traced``:
    its traced output; ``rows``: the traced rows of ``batch_like``."""
    cls = type(operation)
    if cls not in _CLASSES:
        _CLASSES[cls] = type(cls.__name__, (_Rebatched, cls), {})
    copy = object.__new__(_CLASSES[cls])
    copy.__dict__.update(operation.__dict__)
    copy.rebatched_from = operation
    copy.traced_output = traced
    copy.traced_rows = rows
    return copy


class _Rebatched:
    """Mixed into a copied operation: ``batch_like`` (a tensor whose first
    axis was ``traced_rows`` long) gives the batch size when it runs."""

    def call(self, *args, batch_like, **kwargs):
        batch, rows = keras.ops.shape(batch_like)[0], self.traced_rows
        operation = object.__new__(type(self.rebatched_from))
        operation.__dict__.update(self.rebatched_from.__dict__)
        for name, value in _attributes(self.rebatched_from).items():
            setattr(operation, name, _substitute(value, batch, rows))
        return operation.call(
            *_substitute(args, batch, rows), **_substitute(kwargs, batch, rows)
        )

    def compute_output_spec(self, *args, batch_like, **kwargs):
        def unknown(tensor):
            shape = tuple(None if _from_batch(s) else s for s in tensor.shape)
            return keras.KerasTensor(shape, dtype=tensor.dtype)

        return keras.tree.map_structure(unknown, self.traced_output)
