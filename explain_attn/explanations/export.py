"""Maps of a dataset, written to one ``.npz`` (``explain-attn maps``)."""

import numpy as np

from explain_attn.explanations.explanation import Explainer, explanations_for
from explain_attn.explanations.inputs import batches, check_model_images
from explain_attn.explanations.lookup import attention_layer_names
from explain_attn.explanations.methods import get_method
from explain_attn.explanations.predict import Predictor
from explain_attn.models.saving import atomic_path

__all__ = ["export_maps"]


def _explanations(model, layers, methods, cam_layer):
    for method in methods:
        if not get_method(method).uses_class:
            raise ValueError(
                f"--method {method!r} is not a CAM method; attention maps "
                "are always written (choose layers with --layer). Choose a "
                "class-activation method such as grad_cam."
            )
    chosen = []
    if layers is not None or attention_layer_names(model) or not methods:
        chosen.extend(explanations_for(model, "attention", layers))
    for method in methods:
        chosen.extend(explanations_for(model, method, cam_layer))
    return chosen


def export_maps(
    model,
    dataset,
    path,
    *,
    layers=None,
    methods=(),
    cam_layer=None,
    with_grad_cam=False,
    batch_size=128,
):
    """Computes maps for a dataset and writes them to an ``.npz`` atomically.

    Args:
        model: The model.
        dataset: An `explain_attn.data.Dataset`.
        path: Output file ending in ``.npz``.
        layers: Attention layers as in `attention_maps`; ``None`` for every
            attention layer (none when the model has no attention layer and
            ``methods`` are given).
        methods: Names of class-activation methods (e.g. ``"grad_cam"``,
            ``"layer_cam"``), each computed at ``cam_layer`` for each
            image's predicted class.
        cam_layer: Layer of the CAM methods (``None``: the last 4-D layer).
        with_grad_cam: Shortcut for adding ``"grad_cam"`` to ``methods``.
        batch_size: Images per forward pass.

    Returns:
        A dict from each stored map's description to its shape.

    The file holds ``map_<i>`` for the i-th entry of ``layer_names``,
    ``labels``, ``predictions``, ``class_names`` and, for each CAM method
    ``NAME``, ``NAME`` ``(N, h, w)`` and ``NAME_layer``.
    """
    if not str(path).endswith(".npz"):
        raise ValueError(f"The output must end in '.npz'. Received: {path!r}")
    methods = list(dict.fromkeys([*methods, *(["grad_cam"] * with_grad_cam)]))
    explanations = _explanations(model, layers, methods, cam_layer)
    images = check_model_images(model, dataset.images)
    explainer = Explainer(explanations)
    predictor = Predictor(model)
    chunks = {explanation: [] for explanation in explanations}
    predictions = []
    for batch in batches(images, batch_size):
        classes = predictor(batch)
        predictions.append(classes)
        for explanation, maps in explainer.batch(batch, classes).items():
            chunks[explanation].append(maps)
    maps = {e: np.concatenate(chunks[e]) for e in explanations}
    attention = [e for e in explanations if e.method == "attention"]
    arrays = {f"map_{i}": maps[e] for i, e in enumerate(attention)}
    arrays["layer_names"] = np.array([e.layer for e in attention])
    arrays["labels"] = np.asarray(dataset.labels)
    arrays["predictions"] = np.concatenate(predictions)
    arrays["class_names"] = np.array(dataset.class_names)
    summary = {e.layer: maps[e].shape for e in attention}
    for explanation in explanations:
        if explanation.method != "attention":
            arrays[explanation.method] = maps[explanation]
            arrays[f"{explanation.method}_layer"] = np.array(explanation.layer)
            summary[explanation.short_label] = maps[explanation].shape
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as handle:
            np.savez_compressed(handle, **arrays)
    return summary
