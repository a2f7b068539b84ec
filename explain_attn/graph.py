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
import warnings

import keras
import tensorflow as tf

from explain_attn.batching import SENTINEL
from explain_attn.tracing import (
    TracedPart,
    TraceFailure,
    is_traceable,
    operation_name,
    part_names,
    same_outputs,
    tensor_outputs,
    trace_call,
    without_none,
)

__all__ = [
    "STATE_ATTRIBUTE",
    "FlatGraph",
    "ModelState",
    "Tap",
    "flat_graph",
    "forget_state",
    "model_state",
]


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
        opened: Whether the call's parts are taps too (a subclassed layer
            or ``Lambda`` traced by `explain_attn.tracing`, whose
            parts' paths start with ``path/``).
        rows: For a call inside a layer traced with a known batch size
            (`explain_attn.batching`), the rows of its tensor arguments in
            that trace, multiples of ``SENTINEL`` images; else ``()``.
    """

    path: str
    layer: keras.layers.Layer
    input: object
    output: object
    arguments: tuple = ()
    keywords: tuple = ()
    opened: bool = False
    rows: tuple = ()

    @property
    def tensors(self):
        """Every symbolic tensor among the call's arguments, in order."""
        values = keras.tree.flatten(
            [list(self.arguments), [v for _, v in self.keywords]]
        )
        return [v for v in values if isinstance(v, keras.KerasTensor)]

    @property
    def rows_per_image(self):
        """Rows per image of the call's first tensor argument in the
        trace of the layer it is in, or ``None`` where not known (`rows`
        empty): 4 for Swin's window attention over 4 windows of each
        image, ``windows × heads`` for ViTDet's, which folds its heads
        into the batch axis too."""
        if not self.rows or self.rows[0] is None or self.rows[0] % SENTINEL:
            return None
        return self.rows[0] // SENTINEL

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
            `keras.Operation`, which has no weights. The parts of traced
            calls (see `Tap.opened`) come before the call itself.
        untraced: ``{path: TraceFailure}`` of the subclassed layers and
            Lambdas whose call could not be traced (kept opaque).
    """

    inputs: list
    outputs: list
    taps: dict
    untraced: dict = dataclasses.field(default_factory=dict)

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


@dataclasses.dataclass(eq=False)
class ModelState:
    """What is built once per model and then read by every explanation,
    check and report section: the model's flat graph, its attention
    modules (`explain_attn.attention.discovery`) and its compiled functions
    (`explain_attn.explanations.compiled`).

    Built in the open and passed on: the entry points (`Explainer`,
    `export_maps`, the report's model entries, the CLI commands, the
    recorder callback, each faithfulness check) get one with `model_state`
    and hand it to every function they call. It is kept in one place, on
    the model itself as ``model.explain_attn_state``, the way Keras keeps
    a model's compiled ``predict_function`` on the model: visible, gone
    with the model, dropped by `forget_state`, and built anew when the
    model's layers change (a Sequential model built or grown). Weights are
    read when its functions run, except a weight a layer uses with no input
    tensor (ViTDet's relative-position tables), which is read when the
    graph is traced: after loading other weights into such a model, call
    `forget_state`. No module keeps per-model state anywhere else, so
    repeated one-shot calls given the model share its graph and traced
    functions. Building the state costs nothing; its graph is built on
    first use, and the compiled functions cost more. Measured (CPU
    seconds, 2 shared cores, `benchmarks.bench_state`): the graph of the
    15-call ``small_attention`` 0.012-0.014 s, of
    ``keras.applications.MobileNetV2`` (155 calls) 0.07-0.08 s;
    ``grad_cam`` of 2 images on a new state 0.41-0.49 s and 2.3-2.9 s, on
    a built one 0.006 s and 0.03-0.04 s.

    Attributes:
        model: The `keras.Model`.
        discovered: ``(modules, {path: why it has no map})`` once
            discovery has run, else ``None``.
        functions: Compiled functions by what determines them.
    """

    model: keras.Model
    discovered: tuple | None = None
    functions: dict = dataclasses.field(default_factory=dict)
    _graph: FlatGraph | None = dataclasses.field(default=None, repr=False)
    _layers: tuple = dataclasses.field(default=(), repr=False)
    _built: bool = dataclasses.field(default=False, repr=False)

    def __post_init__(self):
        self._layers, self._built = _structure(self.model)

    def describes(self, model):
        """Whether this state is ``model``'s as it is now: the same model
        with the same layers, built as it was."""
        layers, built = _structure(model)
        return (
            model is self.model
            and built == self._built
            and len(layers) == len(self._layers)
            and all(a is b for a, b in zip(layers, self._layers, strict=True))
        )

    @property
    def graph(self):
        """The `FlatGraph`, built on first use (a model without one, e.g.
        a subclassed model, can still have compiled functions)."""
        if self._graph is None:
            self._graph = _flatten(self.model)
        return self._graph


STATE_ATTRIBUTE = "explain_attn_state"
"""The attribute of a `keras.Model` that holds its `ModelState`."""


def model_state(model):
    """The `ModelState` of ``model``: ``model`` itself when it is one, else
    the one kept on the model (``model.explain_attn_state``), built on the
    first call and again when the model's layers have changed.

    Raises:
        TypeError: If ``model`` is neither a `keras.Model` nor a
            `ModelState`.
    """
    if isinstance(model, ModelState):
        return model
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Expected a keras.Model. Received: "
            f"model of type {type(model).__name__}"
        )
    state = vars(model).get(STATE_ATTRIBUTE)
    if state is None or not state.describes(model):
        state = ModelState(model)
        # Keras tracks layers, variables and containers set on a model; a
        # `ModelState` is none of them, so it is kept as a plain attribute
        # (not saved with the model, not one of its layers).
        setattr(model, STATE_ATTRIBUTE, state)
    return state


def forget_state(model):
    """Drops the `ModelState` kept on ``model`` (its graph, attention
    modules and compiled functions); the next call builds a new one."""
    vars(model).pop(STATE_ATTRIBUTE, None)


def _structure(model):
    """What a state depends on besides the weights: the model's layers,
    and whether it is built."""
    return tuple(model.layers), bool(model.built)


def flat_graph(model):
    """Returns the `FlatGraph` of ``model`` (a `keras.Model` or its
    `ModelState`), built once per state.

    Raises:
        TypeError: If ``model`` is not a `keras.Model` or `ModelState`.
        ValueError: If the model is subclassed (it has no graph to read) or
            is a Sequential model that was never built.
    """
    return model_state(model).graph


def _flatten(model, check=False):
    """The flat graph; traced layers are checked all at once (the flat
    graph against the model), else each on its own (``check``)."""
    taps, untraced = {}, {}
    scope = _Scope("", taps, untraced, check=check)
    if isinstance(model, keras.Sequential):
        inputs = _sequential_inputs(model)
        output = _run_layers(model, inputs[0], _recorder(scope))
        graph = FlatGraph(inputs, [output], taps, untraced)
    else:
        graph = _flatten_functional(model, scope)
    if check or not any(tap.opened for tap in taps.values()):
        return graph
    if _reproduces_model(model, graph):
        return graph
    return _flatten(model, check=True)


def _flatten_functional(model, scope):
    if not _is_functional(model):
        return _flatten_subclassed(model, scope)
    inputs = [
        keras.Input(
            batch_shape=tensor.shape, dtype=tensor.dtype, name=tensor.name
        )
        for tensor in model.inputs
    ]
    outputs = _run_graph(model, inputs, scope)
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return FlatGraph(inputs, outputs, scope.taps, scope.untraced)


def _flatten_subclassed(model, scope):
    """A subclassed model's ``call`` traced like a subclassed layer's
    (`explain_attn.tracing`), on an input shaped as the one it was built
    with; its parts' paths are the attributes holding them."""
    built = model.get_build_config() if model.built else None
    shape = (built or {}).get("input_shape")
    if not built:
        reason = "it was never called on a batch, so its input is unknown"
    elif not isinstance(shape, tuple | list):
        reason = "it takes several inputs, where one batch of images is read"
    else:
        inputs = [keras.Input(batch_shape=(None, *tuple(shape)[1:]))]
        outputs = _traced(model, inputs, {}, scope, model.name)
        if outputs is not None:
            outputs = outputs if isinstance(outputs, list) else [outputs]
            return FlatGraph(inputs, outputs, scope.taps, scope.untraced)
        failure = scope.untraced.pop(model.name, None)
        reason = "its call cannot be traced" + (
            f" ({failure.reason})" if failure else ""
        )
    raise ValueError(
        f"Model {model.name!r} is a subclassed keras.Model "
        f"({type(model).__name__}) without a functional graph, and {reason}, "
        "so its layers' inputs and outputs cannot be read. Call it once on "
        "a batch of images, or build it with the functional API "
        "(keras.Model(inputs, outputs)) or keras.Sequential."
    )


def _reproduces_model(model, graph):
    """Whether the flat graph computes the model's outputs."""

    def structured(values):
        try:
            structure = model.input
        except AttributeError:
            # A Sequential model's `input` raises until it is called, while
            # its `inputs` list exists.
            return values[0] if len(values) == 1 else values
        return keras.tree.pack_sequence_as(structure, values)

    try:
        flat = keras.Model(graph.model_inputs, graph.outputs)
        with warnings.catch_warnings():
            # Keras' warnings about the user's model (an input structure it
            # accepts but would write differently) are not ours to raise.
            warnings.simplefilter("ignore")
            return same_outputs(
                lambda values: model(structured(values), training=False),
                lambda values, training: flat(
                    values[0] if len(values) == 1 else values,
                    training=training,
                ),
                graph.inputs,
            )
    except (ValueError, TypeError, tf.errors.OpError):
        # A traced layer that cannot run at another batch size (TensorFlow
        # refuses a reshape): each traced layer is then checked on its own
        # and such a one kept opaque, with its one-line reason.
        return False


def _run_graph(model, input_tensors, scope):
    """Runs functional ``model`` on ``input_tensors``, recording each call
    in ``scope``; returns the outputs.

    Keras' ``clone_model`` runs the graph through our ``call_function`` and
    then builds a Functional model of what it made; that last step refuses
    graphs where opened layers repeat a part's name (two ``dropout`` in
    two blocks), which we do not need: the outputs come from the calls.
    """
    try:
        _clone_into(model, input_tensors, scope)
    except (ValueError, TypeError) as error:
        # Keras 3.11 builds the clone with the model's own class, whose
        # constructor may take other arguments (keras-hub backbones).
        try:
            return _nested_outputs(model, scope.produced, input_tensors)
        except KeyError:
            raise error from None
    return _nested_outputs(model, scope.produced, input_tensors)


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


@dataclasses.dataclass
class _Scope:
    """Where calls are recorded: a path prefix, the taps and the names.

    ``names`` maps ``id(layer)`` to the name a traced layer's parts get
    (`explain_attn.tracing.part_names`); ``traced`` says whether
    this scope is a traced call's, where operations get stable names and
    repeated names a counter; ``rows``, for a call traced with a known
    batch size, the rows of its layers' arguments there.
    """

    prefix: str
    taps: dict
    untraced: dict
    names: dict = dataclasses.field(default_factory=dict)
    traced: bool = False
    check: bool = True
    produced: dict = dataclasses.field(default_factory=dict)
    counts: dict = dataclasses.field(default_factory=dict)
    rows: dict = dataclasses.field(default_factory=dict)

    def inner(self, name, names=None, traced=False):
        return _Scope(
            f"{self.prefix}{name}/",
            self.taps,
            self.untraced,
            names or {},
            traced,
            self.check,
        )

    def path(self, layer):
        if not self.traced:
            return f"{self.prefix}{layer.name}"
        name = self.names.get(id(layer))
        if name is None:
            is_layer = isinstance(layer, keras.layers.Layer)
            name = layer.name if is_layer else operation_name(layer)
        count = self.counts.get(name, 0)
        self.counts[name] = count + 1
        return f"{self.prefix}{name}" + (f"_{count}" if count else "")


def _recorder(scope):
    """Returns a ``call_function`` that records each call as a `Tap`.

    ``scope.produced`` maps ``id(layer)`` to what the call returned, so
    that the output of a nested functional model can be found in the flat
    graph.
    """

    def call(layer, *args, **kwargs):
        path = scope.path(layer)
        name = path[len(scope.prefix) :]
        opened = True
        # A call rewritten for any batch size is named by its original.
        rows = scope.rows.get(id(getattr(layer, "rebatched_from", layer)))
        if isinstance(layer, keras.Sequential):
            output = _run_layers(layer, args[0], _recorder(scope.inner(name)))
        elif _is_functional(layer):
            inner = scope.inner(name)
            output = _run_graph(layer, keras.tree.flatten(args[0]), inner)
        else:
            output = _traced(layer, args, kwargs, scope.inner(name), path, rows)
            opened = output is not None
            if output is None:
                output = _call(layer, args, kwargs, scope, path)
        # As Keras recorded the call's node in a traced graph: without
        # its ``None`` outputs (`explain_attn.tracing.without_none`).
        output = tensor_outputs(output)
        scope.taps[path] = Tap(
            path,
            layer,
            args[0] if args else None,
            output,
            tuple(args),
            tuple(kwargs.items()),
            opened,
            tuple(rows or ()),
        )
        scope.produced[id(layer)] = output
        return output

    return call


def _call(layer, args, kwargs, scope, path):
    """``layer(*args, **kwargs)``; a layer inside a traced call through a
    `TracedPart` named by its path (names repeat across blocks)."""
    if not scope.traced or not isinstance(layer, keras.layers.Layer):
        return layer(*args, **kwargs)
    # Keras refuses a catch-all mixing tensors and other values
    # (``use_causal_mask=False``): those are kept by the part.
    tensors = {
        k: v
        for k, v in kwargs.items()
        if isinstance(v, keras.KerasTensor) or k == "training"
    }
    options = {k: v for k, v in kwargs.items() if k not in tensors}
    if args:
        return TracedPart(layer, path, options=options)(*args, **tensors)
    keyword = next((k for k in tensors if k != "training"), None)
    if keyword is None:
        return layer(*args, **kwargs)
    first = tensors.pop(keyword)
    return TracedPart(layer, path, keyword, options)(first, **tensors)


def _clone_into(model, input_tensors, scope):
    with warnings.catch_warnings():
        # The Functional model Keras ends a clone with is not used; its
        # complaint about dict keys and tensor names does not apply.
        warnings.filterwarnings(
            "ignore", message="When providing `inputs` as a dict"
        )
        return _clone(model, input_tensors, scope)


def _clone(model, input_tensors, scope):
    return keras.models.clone_model(
        model,
        input_tensors=keras.tree.pack_sequence_as(model.input, input_tensors),
        clone_function=_same_layer,
        call_function=_recorder(scope),
    )


def _traced(layer, args, kwargs, scope, path, rows=None):
    """The output of ``layer``'s call traced into its parts (recorded in
    ``scope``), or ``None`` when it is not traceable. ``rows``: see
    `explain_attn.tracing.trace_call`."""
    if not is_traceable(layer):
        return None
    traced = trace_call(layer, args, kwargs, check=scope.check, rows=rows)
    if isinstance(traced, TraceFailure):
        scope.untraced[path] = traced
        return None
    model, tensors, scope.rows, restore = traced
    scope.names = part_names(layer)
    scope.traced = True
    try:
        with without_none():
            return restore(_run_graph(model, tensors, scope))
    except ValueError as error:  # The parts ran differently: kept opaque.
        for part in [p for p in scope.taps if p.startswith(scope.prefix)]:
            del scope.taps[part]
        scope.untraced[path] = TraceFailure(
            type(layer).__name__, str(error).splitlines()[0][:200]
        )
        return None


def _is_functional(layer):
    return isinstance(layer, keras.Model) and hasattr(layer, "outputs")


def _nested_outputs(model, produced, inputs=None):
    """Maps a nested model's own output tensors to their flat-graph copies
    (``inputs``: the flat-graph tensors of the model's inputs, in order, for
    an output that is an input)."""
    outputs = []
    for tensor in model.outputs:
        same = [i for i, t in enumerate(model.inputs) if t is tensor]
        if inputs is not None and same:
            outputs.append(inputs[same[0]])
            continue
        # `_keras_history` is how a KerasTensor names the call producing it.
        operation, _, index = tensor._keras_history
        produced_output = produced[id(operation)]
        if isinstance(produced_output, list | tuple):
            produced_output = produced_output[index]
        outputs.append(produced_output)
    return outputs[0] if len(outputs) == 1 else outputs
