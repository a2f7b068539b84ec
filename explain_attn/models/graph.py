"""A flat view of a Keras model's graph, nested sub-models included.

Keras' ``Model.get_layer`` does not look inside nested models, and the
tensors of a nested model's layers live in that model's own graph, so they
cannot be outputs of an extractor built on the outer model's inputs. We
rebuild the forward pass once, calling the *same* layer objects (weights are
shared, nothing is copied or changed) on new symbolic inputs, and record
every layer call as a `Tap` with its path ``outer/inner``. Any tensor of any
depth can then be an output of one `keras.Model` on the flat inputs.
"""

import dataclasses
import weakref

import keras

__all__ = ["FlatGraph", "Tap", "flat_graph"]


@dataclasses.dataclass(frozen=True)
class Tap:
    """One layer call in the flat graph.

    Attributes:
        path: ``"name"`` or ``"outer/inner/name"`` for nested models.
        layer: The layer object of the caller's model (shared, not a copy).
        input: The symbolic tensor passed as the layer's first argument.
        output: The symbolic tensor the layer returned.
        arguments: Every positional argument of the call, as given (lists
            of tensors for merge layers such as ``Multiply``; plain numbers
            for an operation such as ``x * 0.5``).
        keywords: The call's keyword arguments, as ``(name, value)`` pairs.
    """

    path: str
    layer: keras.layers.Layer
    input: object
    output: object
    arguments: tuple = ()
    keywords: tuple = ()

    @property
    def tensors(self):
        """Every symbolic tensor among the call's arguments, in order."""
        values = keras.tree.flatten(
            [list(self.arguments), [v for _, v in self.keywords]]
        )
        return [v for v in values if isinstance(v, keras.KerasTensor)]

    @property
    def is_spatial(self):
        """Whether the output is a 4-D ``(batch, H, W, C)`` tensor."""
        shape = getattr(self.output, "shape", None)
        return shape is not None and len(shape) == 4


@dataclasses.dataclass(frozen=True)
class FlatGraph:
    """The model's forward pass with every layer call recorded.

    Attributes:
        inputs: Symbolic inputs of the flat graph.
        outputs: The model's outputs, computed from ``inputs``.
        taps: Every layer call, in call order, keyed by path. Operations
            written with `keras.ops` in a functional graph (``x * 0.5``,
            ``keras.ops.sigmoid(x)``) are calls too: their "layer" is the
            `keras.Operation`, which has no weights.
    """

    inputs: list
    outputs: list
    taps: dict

    def producer(self, tensor):
        """The `Tap` whose call returned ``tensor``, or ``None``.

        Inside a nested model, the innermost call that returned it.
        """
        if not hasattr(self, "_producers"):
            producers = {}
            for tap in self.taps.values():
                for value in keras.tree.flatten(tap.output):
                    producers.setdefault(id(value), tap)
            object.__setattr__(self, "_producers", producers)
        return self._producers.get(id(tensor))

    @property
    def model_inputs(self):
        """``inputs`` in the structure a new `keras.Model` should take."""
        return self.inputs[0] if len(self.inputs) == 1 else self.inputs


_CACHE = weakref.WeakKeyDictionary()


def flat_graph(model):
    """Returns the `FlatGraph` of ``model``, built once and cached.

    Raises:
        TypeError: If ``model`` is not a `keras.Model`.
        ValueError: If the model is subclassed (it has no graph to read) or
            is a Sequential model that was never built.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected a keras.Model. Received: "
            f"model of type {type(model).__name__}"
        )
    if model not in _CACHE:
        _CACHE[model] = _flatten(model)
    return _CACHE[model]


def _flatten(model):
    taps = {}
    if isinstance(model, keras.Sequential):
        inputs = _sequential_inputs(model)
        output = _run_layers(model, inputs[0], _recorder("", taps, {}))
        return FlatGraph(inputs=inputs, outputs=[output], taps=taps)
    try:
        clone = keras.models.clone_model(
            model,
            clone_function=_same_layer,
            call_function=_recorder("", taps, {}),
        )
    except ValueError as error:
        if "Functional" not in str(error):
            raise
        raise ValueError(
            f"Model {model.name!r} is a subclassed keras.Model "
            f"({type(model).__name__}) without a functional graph, so its "
            "layers' inputs and outputs cannot be read. Build it with the "
            "functional API (keras.Model(inputs, outputs)) or keras.Sequential."
        ) from None
    return FlatGraph(inputs=clone.inputs, outputs=clone.outputs, taps=taps)


def _same_layer(layer):
    return layer


def _sequential_inputs(model):
    try:
        return [keras.Input(batch_shape=model.inputs[0].shape)]
    except (AttributeError, ValueError):
        raise ValueError(
            f"Sequential model {model.name!r} is not built, so its input "
            "shape is unknown. Give it a keras.Input(shape=...) as first "
            "layer or call model.build(input_shape)."
        ) from None


def _run_layers(model, tensor, record):
    for layer in model.layers:
        tensor = record(layer, tensor)
    return tensor


def _recorder(prefix, taps, produced):
    """Returns a ``call_function`` that records each call as a `Tap`.

    ``produced`` maps ``id(layer)`` to what the call returned, so that the
    output of a nested functional model can be found in the flat graph.
    """

    def call(layer, *args, **kwargs):
        if isinstance(layer, keras.Sequential):
            inner = _recorder(f"{prefix}{layer.name}/", taps, {})
            output = _run_layers(layer, args[0], inner)
        elif _is_functional(layer):
            inner = {}
            keras.models.clone_model(
                layer,
                input_tensors=args[0],
                clone_function=_same_layer,
                call_function=_recorder(f"{prefix}{layer.name}/", taps, inner),
            )
            output = _nested_outputs(layer, inner)
        else:
            output = layer(*args, **kwargs)
        path = f"{prefix}{layer.name}"
        taps[path] = Tap(
            path,
            layer,
            args[0] if args else None,
            output,
            tuple(args),
            tuple(kwargs.items()),
        )
        produced[id(layer)] = output
        return output

    return call


def _is_functional(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "outputs")


def _nested_outputs(model, produced):
    """Maps a nested model's own output tensors to their flat-graph copies."""
    outputs = []
    for tensor in model.outputs:
        # `_keras_history` is how a KerasTensor names the call producing it.
        operation, _, index = tensor._keras_history
        produced_output = produced[id(operation)]
        if isinstance(produced_output, list | tuple):
            produced_output = produced_output[index]
        outputs.append(produced_output)
    return outputs[0] if len(outputs) == 1 else outputs
