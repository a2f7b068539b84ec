"""The report's gallery: informative test images with every map overlaid."""

from typing import TypedDict

import numpy as np

import explain_attn.report.figures as figures
from explain_attn.data.loaders import take_images
from explain_attn.explanations.explanation import Explainer
from explain_attn.explanations.methods import get_method
from explain_attn.report.drawing import Drawing
from explain_attn.report.section import Computed, Section

__all__ = ["GalleryRow", "GallerySection", "choose_examples", "gallery"]


class GalleryRow(TypedDict):
    """One gallery image in ``report.json`` (the gallery's result is a
    list of them; the images and maps are the section's attachment)."""

    index: int
    label: int
    predictions: dict
    """Model key -> predicted class."""
    reasons: list
    """Why the image was chosen."""


def _candidates(explanations, reference, evaluation, labels, seed):
    """``[(reason, ordered image indices)]``, in the order they take turns."""
    attention = [e for e in explanations if e.is_attention]
    first = attention[0] if attention else explanations[0]
    values = evaluation.values[first]
    candidates = []
    if "mass_in_mask" in values:
        mass = np.nan_to_num(values["mass_in_mask"], nan=-1.0)
        order = np.argsort(-mass, kind="stable")
        candidates.append((f"highest mass in mask ({first.label})", order))
        candidates.append((f"lowest mass in mask ({first.label})", order[::-1]))
    if first in evaluation.agreement:
        spearman = np.nan_to_num(
            evaluation.agreement[first]["spearman"], nan=2.0
        )
        title = get_method(reference.method).title
        candidates.append(
            (
                f"largest disagreement of {first.label} with the "
                f"{reference.model_key}'s {title}",
                np.argsort(spearman, kind="stable"),
            )
        )
    wrong = np.flatnonzero(evaluation.predictions[first.model_key] != labels)
    candidates.append((f"misclassified by {first.model_name}", wrong))
    rng = np.random.default_rng(seed)
    candidates.append(("random", rng.permutation(len(labels))))
    return candidates


def choose_examples(candidates, count):
    """Takes indices from the candidate orders in turn, without repeats.

    Returns:
        A dict from image index to the reason it was chosen.
    """
    chosen = {}
    pointers = [0] * len(candidates)
    while len(chosen) < count:
        progressed = False
        for position, (reason, order) in enumerate(candidates):
            while pointers[position] < len(order):
                index = int(order[pointers[position]])
                pointers[position] += 1
                if index not in chosen:
                    chosen[index] = reason
                    progressed = True
                    break
            if len(chosen) >= count:
                break
        if not progressed:
            break
    return chosen


def gallery(
    explanations,
    reference,
    evaluation,
    test,
    *,
    num_examples,
    seed,
    batch_size,
    strategy=None,
):
    """Picks informative test images and computes their full-size maps.

    Only the chosen images are read from ``test`` (`take_images`): it may
    be a streamed source. ``strategy`` (``None`` or a `tf.distribute`
    strategy) shares the forward passes between its replicas.

    Returns:
        A list of dicts, in order of index, with ``index``, ``image``,
        ``mask``, ``overlays`` (`Explanation` -> ``(H, W)`` map at input
        resolution), ``reasons``, ``predictions`` (model key -> class) and
        ``rank`` (the order of choice: 0 first).
    """
    labels = np.asarray(test.labels)
    candidates = _candidates(explanations, reference, evaluation, labels, seed)
    chosen = choose_examples(candidates, min(num_examples, len(labels)))
    indices = np.array(sorted(chosen), dtype=int)
    if len(indices) == 0:
        return []
    chosen_data = take_images(test, indices)
    images = chosen_data.images
    overlays = Explainer(explanations, resize_to="input", strategy=strategy)(
        images, batch_size=batch_size, labels=labels[indices]
    )
    masks = chosen_data.masks
    rank = {index: position for position, index in enumerate(chosen)}
    return [
        {
            "index": int(index),
            "image": images[position],
            "mask": None if masks is None else masks[position],
            "overlays": {e: overlays[e][position] for e in explanations},
            "reasons": [chosen[int(index)]],
            "rank": rank[int(index)],
            "predictions": {
                key: int(value[index])
                for key, value in evaluation.predictions.items()
            },
        }
        for position, index in enumerate(indices)
    ]


class GallerySection(Section):
    """Informative images with every map, read again one by one; the
    examples (images and maps) are the section's attachment."""

    name = "gallery"
    partial = "_gallery.html"
    phase = "samples"

    def compute(self, run, observed, data):
        examples = gallery(
            run.explanations,
            run.reference,
            observed["evaluation"],
            run.test,
            num_examples=run.num_examples,
            seed=run.seed,
            batch_size=run.batch_size,
            strategy=run.strategy,
        )
        rows = [
            GalleryRow(
                index=example["index"],
                label=int(run.test.labels[example["index"]]),
                predictions=example["predictions"],
                reasons=example["reasons"],
            )
            for example in examples
        ]
        return Computed(rows, attachment=examples)

    def figures(self, results, attachments, data):
        return {
            str(number): Drawing(figures.example_figure, _panels(example))
            for number, example in enumerate(attachments.get("gallery", []))
        }

    def context(self, report):
        data = report.data
        models = {row["key"]: row for row in data["models"]}
        drawn = report.figures["gallery"]
        return {
            "gallery_legend": [row["label"] for row in data["explanations"]],
            "gallery": [
                gallery_entry(example, data, models, drawn[str(number)])
                for number, example in enumerate(report.gallery)
            ],
        }


def _panel_names(explanation):
    """The method's title for class-activation maps, then the layer's last
    path component."""
    method = get_method(explanation.method)
    layer = explanation.layer.rsplit("/", 1)[-1]
    return (method.title, layer) if method.uses_class else (layer,)


def _panels(example):
    """`figures.example_figure`'s arguments for one gallery example."""
    explanations = list(example["overlays"])
    return (
        example["image"],
        example["mask"],
        [example["overlays"][e] for e in explanations],
        [
            figures.panel_title(number, e.model_key, *_panel_names(e))
            for number, e in enumerate(explanations, 1)
        ],
    )


def gallery_entry(example, data, models, figure):
    """What the template shows of one gallery example (``figure``: its
    drawn `figures.example_figure`)."""
    explanations = list(example["overlays"])
    per_image = data["per_image"]["metrics"]
    index = example["index"]
    class_names = data["dataset"]["class_names"]
    return {
        "figure": figure,
        "index": index,
        "true": class_names[data["per_image"]["labels"][index]],
        "predictions": [
            (models[key]["name"], class_names[value])
            for key, value in example["predictions"].items()
        ],
        "reasons": example["reasons"],
        "metrics": [
            (
                e.label,
                {
                    name: per_image[e.key][name][index]
                    for name in ("entropy", "mass_in_mask")
                    if name in per_image[e.key]
                },
            )
            for e in explanations
        ],
    }
