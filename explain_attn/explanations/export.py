"""Maps of a dataset, written to one ``.npz`` (``explain-attn maps``)."""

import numpy as np

from explain_attn.explanations.attention import ChannelWeights
from explain_attn.explanations.compiled import compiled
from explain_attn.explanations.explanation import Explainer, explanations_for
from explain_attn.explanations.inputs import batches, check_model_images
from explain_attn.explanations.lookup import (
    attention_layer_names,
    channel_module_names,
    resolve_layers,
)
from explain_attn.explanations.methods import get_method
from explain_attn.explanations.predict import Predictor
from explain_attn.models.graph import flat_graph
from explain_attn.models.saving import atomic_path

__all__ = ["check_cam_class", "export_maps"]


def _split_layers(model, layers):
    """``(spatial layers or None, channel-module paths)`` to export."""
    channel = set(channel_module_names(model))
    if layers is None:
        spatial = attention_layer_names(model)
        return (spatial or None), sorted(channel, key=_order(model))
    paths = resolve_layers(model, layers)
    return (
        [p for p in paths if p not in channel] or None,
        [p for p in paths if p in channel],
    )


def _order(model):
    order = list(flat_graph(model).taps)
    return order.index


def _explanations(model, layers, methods, cam_layer):
    for method in methods:
        if method == "attention":
            raise ValueError(
                "--method 'attention' is not a CAM method: attention maps "
                "are always written (choose layers with --layer). Choose a "
                "class-activation method such as grad_cam."
            )
    spatial, channel = _split_layers(model, layers)
    chosen = []
    if spatial is not None or (not methods and not channel):
        chosen.extend(explanations_for(model, "attention", spatial))
    for method in methods:
        uses_class = get_method(method).uses_class
        where = cam_layer if uses_class else None
        chosen.extend(explanations_for(model, method, where))
    return chosen, channel


def _cam_classes(cam_class, labels, predicted, num_classes):
    """The classes the CAMs explain for one batch; see `export_maps`."""
    if cam_class in (None, "predicted"):
        return predicted
    if cam_class == "true":
        return np.asarray(labels, dtype=np.int64)
    index = int(cam_class)
    if not 0 <= index < num_classes:
        raise ValueError(
            f"--cam-class {cam_class} is not a class of the model, which has "
            f"{num_classes} classes (0 to {num_classes - 1})."
        )
    return np.full(len(predicted), index, np.int64)


def check_cam_class(cam_class):
    """``"predicted"``, ``"true"`` or a class index; else `ValueError`."""
    if cam_class in (None, "predicted", "true"):
        return cam_class or "predicted"
    if isinstance(cam_class, int) and not isinstance(cam_class, bool):
        return cam_class
    if isinstance(cam_class, str) and cam_class.isdigit():
        return int(cam_class)
    raise ValueError(
        "--cam-class must be 'predicted', 'true' or a class index (0, 1, "
        f"...). Received: --cam-class {cam_class}"
    )


def export_maps(
    model,
    dataset,
    path,
    *,
    layers=None,
    methods=(),
    cam_layer=None,
    cam_class="predicted",
    with_grad_cam=False,
    batch_size=128,
):
    """Computes maps for a dataset and writes them to an ``.npz`` atomically.

    Args:
        model: The model.
        dataset: An `explain_attn.data.Dataset`.
        path: Output file ending in ``.npz``.
        layers: Attention modules as in `attention_maps`; ``None`` for every
            module. Channel modules (squeeze-and-excitation gates) give
            channel weights, never a map.
        methods: Names of other registered methods: class-activation
            methods (e.g. ``"grad_cam"``), each at ``cam_layer`` for the
            classes of ``cam_class``, or ``"channel_weighted"``.
        cam_layer: Layer of the CAM methods (``None``: the last 4-D layer
            of at least 2×2).
        cam_class: Which class the CAMs explain: ``"predicted"``, ``"true"``
            (the labels) or a class index.
        with_grad_cam: Shortcut for adding ``"grad_cam"`` to ``methods``.
        batch_size: Images per forward pass.

    Returns:
        A dict from each stored array's description to its shape.

    The file holds ``map_<i>`` for the i-th entry of ``layer_names``;
    ``channel_<i>`` ``(N, C)`` weights for the i-th entry of
    ``channel_layer_names``; ``labels``, ``predictions``,
    ``class_names``; for each CAM method ``NAME``, ``NAME`` ``(N, h, w)``,
    ``NAME_layer`` and ``NAME_class`` (``(N,)`` classes explained); for
    ``channel_weighted``, ``channel_weighted_<i>`` and
    ``channel_weighted_layer_names``.
    """
    if not str(path).endswith(".npz"):
        raise ValueError(f"The output must end in '.npz'. Received: {path!r}")
    cam_class = check_cam_class(cam_class)
    methods = list(dict.fromkeys([*methods, *(["grad_cam"] * with_grad_cam)]))
    explanations, channel = _explanations(model, layers, methods, cam_layer)
    images = check_model_images(model, dataset.images)
    computed = _compute(
        model, explanations, channel, images, dataset.labels,
        cam_class, batch_size,
    )  # fmt: skip
    arrays, summary = _arrays(explanations, channel, *computed)
    arrays["labels"] = np.asarray(dataset.labels)
    arrays["class_names"] = np.array(dataset.class_names)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return summary


def _compute(model, explanations, channel, images, labels, cam_class, size):
    """``(maps, channel weights, predictions, CAM classes)``, batched."""
    explainer = Explainer(explanations) if explanations else None
    weights = {
        path: compiled(
            model, ("channel", path), lambda p=path: ChannelWeights(model, p)
        )
        for path in channel
    }
    predictor = Predictor(model)
    num_classes = int(flat_graph(model).outputs[0].shape[-1])
    maps = {e: [] for e in explanations}
    channel_weights = {path: [] for path in channel}
    predictions, explained = [], []
    start = 0
    for batch in batches(images, size):
        stop = start + len(batch)
        predicted = predictor(batch)
        classes = _cam_classes(
            cam_class, labels[start:stop], predicted, num_classes
        )
        predictions.append(predicted)
        explained.append(classes)
        if explainer is not None:
            for explanation, values in explainer.batch(batch, classes).items():
                maps[explanation].append(values)
        for path, function in weights.items():
            channel_weights[path].append(function(batch))
        start = stop
    return (
        {e: np.concatenate(v) for e, v in maps.items()},
        {p: np.concatenate(v) for p, v in channel_weights.items()},
        np.concatenate(predictions),
        np.concatenate(explained),
    )


def _arrays(explanations, channel, maps, weights, predictions, explained):
    attention = [e for e in explanations if e.method == "attention"]
    arrays = {f"map_{i}": maps[e] for i, e in enumerate(attention)}
    arrays["layer_names"] = np.array([e.layer for e in attention], dtype=str)
    summary = {e.layer: maps[e].shape for e in attention}
    for i, path in enumerate(channel):
        arrays[f"channel_{i}"] = weights[path]
        summary[f"{path} (channel weights)"] = weights[path].shape
    arrays["channel_layer_names"] = np.array(channel, dtype=str)
    arrays["predictions"] = predictions
    by_method = {}
    for explanation in explanations:
        if explanation.method != "attention":
            by_method.setdefault(explanation.method, []).append(explanation)
    for method, members in by_method.items():
        if get_method(method).uses_class:
            (explanation,) = members
            arrays[method] = maps[explanation]
            arrays[f"{method}_layer"] = np.array(explanation.layer)
            arrays[f"{method}_class"] = explained
        else:
            for i, explanation in enumerate(members):
                arrays[f"{method}_{i}"] = maps[explanation]
            arrays[f"{method}_layer_names"] = np.array(
                [e.layer for e in members], dtype=str
            )
        for explanation in members:
            summary[explanation.short_label] = maps[explanation].shape
    return arrays, summary
