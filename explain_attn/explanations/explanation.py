"""Explanations as values, and one function that computes their maps.

An `Explanation` says what a map explains: which model, by which method
(`explain_attn.explanations.methods`), at which layer. The report, the
gallery, the faithfulness checks and ``explain-attn maps`` all describe
their maps this way and compute them with `Explainer` (or `explain`); none
of them builds or parses identifiers of another module.
"""

import dataclasses

import numpy as np

from explain_attn.devices import run_replicated
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.inputs import (
    batches,
    check_batch_size,
    check_class_index,
    check_model_images,
    input_shape,
    resize_target,
)
from explain_attn.explanations.methods import get_method
from explain_attn.explanations.predict import Predictor
from explain_attn.graph import ModelState, model_state

__all__ = ["Explainer", "Explanation", "explain", "explanations_for"]


@dataclasses.dataclass(frozen=True)
class Explanation:
    """One map per image: a model, explained by a method at a layer.

    Attributes:
        model: The `keras.Model` explained (not part of equality). Given
            its `explain_attn.graph.ModelState`, the state is kept in
            ``state`` and ``model`` is the state's model.
        method: Name of a registered method, e.g. ``"attention"`` or
            ``"grad_cam"`` (see `explain_attn.explanations.methods`).
        layer: Path of the layer in the model's flat graph.
        model_key: Short key of the model among those compared, e.g.
            ``"attention"`` or ``"baseline"``; the model's name by default.
        model_name: How reports name the model; ``model_key`` by default.
        target: For class-dependent methods (CAMs), the class explained:
            ``"predicted"`` (each image's predicted class, or the classes the
            caller passes), ``"true"`` (the labels passed to `Explainer`)
            or a class index for every image.
        state: The model's `explain_attn.graph.ModelState` that `Explainer`
            prepares the maps with, or ``None`` (it builds one per model;
            not part of equality).

    Example:

    >>> cam = Explanation(baseline, "grad_cam", "conv3", "baseline")
    >>> cam.label
    'baseline · Grad-CAM (conv3)'
    """

    model: object = dataclasses.field(compare=False, repr=False)
    method: str
    layer: str
    model_key: str = ""
    model_name: str = ""
    target: str | int = "predicted"
    state: ModelState | None = dataclasses.field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self):
        if isinstance(self.model, ModelState):
            object.__setattr__(self, "state", self.model)
            object.__setattr__(self, "model", self.model.model)
        get_method(self.method)  # Unknown methods fail here, by name.
        if self.target not in ("predicted", "true") and (
            isinstance(self.target, bool)
            or not isinstance(self.target, int)
            or self.target < 0
        ):
            raise ValueError(
                "An explanation's target must be 'predicted', 'true' or a "
                f"class index. Received: target={self.target!r}"
            )
        if not self.model_key:
            object.__setattr__(self, "model_key", self.model.name)
        if not self.model_name:
            object.__setattr__(self, "model_name", self.model_key)

    @property
    def key(self):
        """A unique string key, for JSON files: ``model_key:method key``.

        Only a key: nothing reads the model, method or layer back from it.
        """
        return f"{self.model_key}:{self.method_key}"

    @property
    def uses_class(self):
        """Whether its maps depend on the class explained (a CAM)."""
        return get_method(self.method).uses_class

    @property
    def is_attention(self):
        """Whether its maps are the model's own attention weights (see
        `explain_attn.explanations.methods.Method`)."""
        return get_method(self.method).is_attention

    @property
    def method_key(self):
        """The explanation's key within its model: the layer for attention,
        the method's name for a CAM."""
        return get_method(self.method).key(self.layer)

    @property
    def short_label(self):
        """The method and layer, e.g. ``"Grad-CAM (conv3)"``; the class
        explained is added when it is not the predicted one."""
        label = get_method(self.method).label(self.layer)
        if self.target == "predicted" or not get_method(self.method).uses_class:
            return label
        what = "true class" if self.target == "true" else f"class {self.target}"
        return f"{label} [{what}]"

    @property
    def label(self):
        """Model, method and layer: ``"baseline · Grad-CAM (conv3)"``."""
        return f"{self.model_name} · {self.short_label}"


def explanations_for(
    model, method, layers=None, *, key="", name="", target="predicted"
):
    """The explanations of ``model`` by ``method`` at ``layers``.

    Args:
        model: The model, or its `explain_attn.graph.ModelState` (kept in
            each explanation, see `Explanation`).
        method: A registered method's name.
        layers: ``None`` for the method's default layers (every attention
            layer; the last 4-D layer for CAMs), or names, paths, patterns.
        key: The model's key (default: its name).
        name: The model's display name (default: the key).
        target: The class a CAM explains (see `Explanation`).

    Returns:
        A list of `Explanation`, in layer order.
    """
    state = model_state(model)
    paths = get_method(method).layers(state, layers)
    return [
        Explanation(state, method, path, key, name, target) for path in paths
    ]


class Explainer:
    """Computes the maps of a list of explanations, batch by batch.

    Prepared once (one compiled function per model and method, all of a
    model's attention layers in one forward pass), then called on as many
    images as needed. Each model's graph and functions are kept in its
    `explain_attn.graph.ModelState`: the explanations' ``state`` when they
    carry one (so that the Explainers of one report share them), else one
    built here per model.

    Args:
        explanations: `Explanation` objects, of one model or several taking
            the same images.
        resize_to: ``None`` (each layer's own resolution), ``"input"`` or
            ``(height, width)``; bilinear.
        strategy: ``None`` or a `tf.distribute` strategy whose replicas
            share each batch (`explain_attn.devices.run_replicated`); the
            models should be built or loaded in its scope.
        predictions: Also prepare the model's predicted classes for
            `batch_with_predictions` (explanations of one model only).

    Attributes:
        states: ``{id(model): ModelState}`` of the explanations' models.
    """

    def __init__(
        self, explanations, resize_to=None, *, strategy=None, predictions=False
    ):
        self.explanations = list(explanations)
        self.strategy = strategy
        if not self.explanations:
            raise ValueError("No explanations given. Pass at least one.")
        grouped = {}
        for explanation in self.explanations:
            group = (
                id(explanation.model),
                explanation.method,
                explanation.target,
            )
            grouped.setdefault(group, []).append(explanation)
        # With ``predictions``, the first group whose method reads the
        # predicted classes in the same pass returns ``(maps, classes)``.
        self._predicting = self._predictor = None
        predicted_model = self._one_model() if predictions else None
        self.states = _states(self.explanations)
        self._groups = []
        for members in grouped.values():
            model = self.states[id(members[0].model)]
            method = get_method(members[0].method)
            target = resize_target(input_shape(model), resize_to)
            layers = list(dict.fromkeys(e.layer for e in members))
            function = None
            if predictions and self._predicting is None:
                function = method.prepare_with_predictions(
                    model, layers, target
                )
                if function is not None:
                    self._predicting = len(self._groups)
            if function is None:
                function = method.prepare(model, layers, target)
            self._groups.append((members, function))
        if predictions and self._predicting is None:
            predicted = self.states[id(predicted_model)]
            self._predictor = compiled(
                predicted, Predictor, lambda: Predictor(predicted)
            )

    def _one_model(self):
        models = {id(e.model): e.model for e in self.explanations}
        if len(models) != 1:
            raise ValueError(
                "Predictions go with the explanations of one model. "
                f"Received: explanations of {len(models)} models."
            )
        return next(iter(models.values()))

    @staticmethod
    def _classes(target, classes, labels):
        if target == "predicted":
            return classes
        if target == "true":
            if labels is None:
                raise ValueError(
                    "Explanations of the true class need the labels. Pass "
                    "labels= to the Explainer call."
                )
            return np.asarray(labels, dtype=np.int32)
        return np.full(len(classes), target, np.int32)

    def batch(self, images, classes, labels=None):
        """Maps of one batch: a dict from `Explanation` to ``(B, h, w)``.

        ``classes`` are the classes of ``"predicted"`` targets (-1 for the
        model's own prediction); ``labels`` those of ``"true"`` targets.
        """
        result = {}
        for index, (members, function) in enumerate(self._groups):
            explained = self._classes(members[0].target, classes, labels)
            maps = run_replicated(self.strategy, function, images, explained)
            if index == self._predicting:
                maps, _ = maps
            for explanation in members:
                result[explanation] = maps[explanation.layer]
        return result

    def batch_with_predictions(self, images, classes_for, labels=None):
        """Predictions and maps of one batch of one model's explanations.

        The model's predicted classes come from the same forward pass as
        a method's maps where the method can read both
        (`Method.prepare_with_predictions`), else from a `Predictor`.

        Args:
            images: ``(B, H, W, C)`` batch.
            classes_for: Called with the ``(B,)`` int64 predictions; returns
                the classes of ``"predicted"`` targets.
            labels: ``(B,)`` true classes, for ``"true"`` targets.

        Returns:
            ``(predictions, maps)``: ``(B,)`` int64 classes and a dict from
            `Explanation` to ``(B, h, w)``.
        """
        if self._predictor is None and self._predicting is None:
            raise ValueError(
                "This Explainer does not predict. Build it with "
                "predictions=True."
            )
        maps = {}
        index = self._predicting
        if index is not None:
            members, function = self._groups[index]
            found, predictions = function(images, None)
            maps.update({e: found[e.layer] for e in members})
        else:
            predictions = self._predictor(images)
        classes = np.asarray(classes_for(predictions), np.int32)
        for position, (members, function) in enumerate(self._groups):
            if position == index:
                continue
            explained = self._classes(members[0].target, classes, labels)
            found = run_replicated(self.strategy, function, images, explained)
            maps.update({e: found[e.layer] for e in members})
        return predictions, maps

    def __call__(
        self, images, *, class_index=None, batch_size=128, labels=None
    ):
        """Maps of ``images``: a dict from `Explanation` to ``(N, h, w)``.

        Args:
            images: ``(N, H, W, C)`` array matching every model's input.
            class_index: For class-dependent methods: ``None`` (each
                image's predicted class, per model), or ``(N,)`` ints.
            batch_size: Images per forward pass.
            labels: ``(N,)`` true classes, for explanations whose target
                is ``"true"``.
        """
        check_batch_size(batch_size)
        for state in self.states.values():
            images = check_model_images(state, images)
        classes = check_class_index(class_index, len(images))
        if labels is not None:
            labels = check_class_index(labels, len(images))
        chunks = {explanation: [] for explanation in self.explanations}
        start = 0
        for batch in batches(images, batch_size):
            stop = start + len(batch)
            for explanation, maps in self.batch(
                batch,
                classes[start:stop],
                None if labels is None else labels[start:stop],
            ).items():
                chunks[explanation].append(maps)
            start = stop
        return {e: np.concatenate(chunks[e]) for e in self.explanations}


def _states(explanations):
    """``{id(model): ModelState}`` of the explanations' models: the first
    state an explanation of the model carries, else a new one."""
    states = {}
    for explanation in explanations:
        if explanation.state is not None:
            states.setdefault(id(explanation.model), explanation.state)
    for explanation in explanations:
        if id(explanation.model) not in states:
            states[id(explanation.model)] = model_state(explanation.model)
    return states


def explain(
    explanations,
    images,
    *,
    class_index=None,
    batch_size=128,
    resize_to=None,
    strategy=None,
):
    """The maps of ``explanations`` for ``images``, in one call.

    A shortcut for ``Explainer(explanations, resize_to, strategy=strategy)(
    images, ...)``; build an `Explainer` yourself to compute maps for many
    batches.

    Returns:
        A dict from each `Explanation` to its ``(N, h, w)`` float32 maps.
    """
    return Explainer(explanations, resize_to, strategy=strategy)(
        images, class_index=class_index, batch_size=batch_size
    )
