"""Faithfulness of a segmentation model's gates: interventions on Dice.

Each spatial gate of an attention U-Net is replaced at inference, as
`explain_attn.faithfulness.interventions` does for classifiers (the same
`Intervened` forward pass: uniform, shuffled, inverted, the true mask), and
the effect is the change in each image's Dice against the true label maps,
paired with the unmodified model on the same images. A gate the model uses
costs Dice when uniform, shuffled or inverted; the true mask may help.
"""

import numpy as np

from explain_attn.attention.discovery import attention_module
from explain_attn.explanations.inputs import all_images, input_shape
from explain_attn.explanations.seg_cam import default_decoder_layer
from explain_attn.faithfulness.interventions import INTERVENTIONS, Intervened
from explain_attn.faithfulness.randomization import randomization_check
from explain_attn.graph import model_state
from explain_attn.metrics.segmentation import dice_per_class, image_scores
from explain_attn.metrics.statistics import paired_difference, summarize
from explain_attn.models.lookup import attention_layer_names

__all__ = [
    "explained_classes",
    "gate_interventions",
    "region_deletion",
    "segmentation_randomization",
    "segmentation_gates",
]


def segmentation_gates(model):
    """The spatial attention modules of a segmentation model, but its
    output: a sigmoid output ``(N, H, W, 1)`` has a gate's shape and range
    (discovery lists it) yet gates nothing. ``model``: a `keras.Model`
    or its `explain_attn.graph.ModelState`."""
    state = model_state(model)
    output = state.graph.outputs[0]
    return [
        path
        for path in attention_layer_names(state)
        if attention_module(state, path).tap.output is not output
    ]


def _dice(encoding, probabilities, targets):
    predicted = encoding.predicted(probabilities)
    per_class = dice_per_class(
        predicted, targets, num_labels=encoding.num_labels
    )
    return image_scores(per_class)


def gate_interventions(
    model, images, targets, encoding, *, layers=None, seed=0, batch_size=32
):
    """Each gate's interventions, measured as the change in Dice.

    Args:
        model: A segmentation model with spatial attention modules, or
            its `explain_attn.graph.ModelState`.
        images: ``(N, H, W, C)`` float32 in the model's scale, or any
            input of `explain_attn.data.adapter.as_source`, read whole.
        targets: ``(N, H, W)`` int true label maps (`TargetEncoding`).
        encoding: Their `explain_attn.report.segmentation_targets.
            TargetEncoding`.
        layers: Gate paths (``None``: `segmentation_gates`).
        seed: Seed of the shuffles and the bootstrap intervals.
        batch_size: Images per pass (each pass runs 5 variants).

    Returns:
        A list of JSON-ready dicts, one per gate: ``layer``, ``map_shape``,
        ``dice`` (the unmodified model's summary) and ``interventions``:
        name -> ``{"dice": summary, "dice_change": paired_difference(
        intervened, unmodified)}`` for ``uniform``, ``shuffled``,
        ``inverted`` and ``mask``. Images whose Dice is undefined (no
        foreground, true or predicted) drop out of the pairs.
    """
    state = model_state(model)
    images = all_images(images, input_shape(state))
    rows = []
    height, width = targets.shape[1:]
    for path in layers or segmentation_gates(state):
        module = attention_module(state, path)
        intervened = Intervened(state, module, with_mask=True)
        scores = intervened.scores(images, targets > 0, seed, batch_size)
        shape = (len(scores), len(images), height, width, -1)
        variants = [
            _dice(encoding, values, targets) for values in scores.reshape(shape)
        ]
        clean = variants[0]
        effects = {
            name: {
                "dice": summarize(values, seed=seed),
                "dice_change": paired_difference(values, clean, seed=seed),
            }
            for name, values in zip(INTERVENTIONS, variants[1:], strict=True)
        }
        rows.append(
            {
                "layer": path,
                "map_shape": list(intervened.map_shape),
                "dice": summarize(clean, seed=seed),
                "interventions": effects,
            }
        )
    return rows


def explained_classes(model, images, encoding, batch_size):
    """Per image, the class Seg-Grad-CAM explains by default: the
    foreground class of largest predicted area (0 for a sigmoid)."""
    model = model_state(model).model
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    predicted = encoding.predicted(probabilities).reshape(len(images), -1)
    if encoding.num_outputs == 1:
        return np.zeros(len(images), np.int64)
    areas = np.stack(
        [(predicted == c).sum(1) for c in range(encoding.num_outputs)], 1
    )
    return np.argmax(areas[:, 1:], axis=1).astype(np.int64) + 1


def segmentation_randomization(
    model, images, encoding, *, cam_layer=None, seed=0, batch_size=32
):
    """The model-parameter randomisation check of a segmentation model's
    gates and Seg-Grad-CAM (`explain_attn.faithfulness.randomization.
    randomization_check` on the cascade from the output down), Seg-Grad-CAM
    explaining each image's class of largest predicted area.

    ``model``: a `keras.Model` or its `explain_attn.graph.ModelState`;
    ``images``: an array or any input of `explain_attn.data.adapter.
    as_source`, read whole.

    Returns:
        Its ``checks`` (one per map: ``map``, ``final_spearman_median``,
        ``final_ssim_median``, ``passed``) and the number of images.
    """
    state = model_state(model)
    images = all_images(images, input_shape(state))
    result = randomization_check(
        state,
        images,
        layers=segmentation_gates(state) or None,
        grad_cam_layer=cam_layer or default_decoder_layer(state),
        class_index=explained_classes(state, images, encoding, batch_size),
        cam_methods=("seg_grad_cam",),
        seed=seed,
        batch_size=batch_size,
        independent=False,
    )
    return {"images": int(len(images)), "checks": result["checks"]}


def _region_scores(model, images, classes, regions, batch_size):
    """Mean probability of each image's class over its region: ``(N,)``."""
    probabilities = model.predict(images, batch_size=batch_size, verbose=0)
    chosen = np.take_along_axis(
        probabilities, classes[:, None, None, None], axis=-1
    )[..., 0]
    area = regions.sum(axis=(1, 2))
    total = (chosen * regions).sum(axis=(1, 2))
    return np.where(area > 0, total / np.where(area > 0, area, 1), np.nan)


def region_deletion(
    model, images, maps, classes, regions, *, steps=8, batch_size=32
):
    """Deletion and insertion on the region score (Petsiuk et al., 2018).

    The pixels are taken in the order of ``maps`` (highest first); in
    ``steps`` equal steps they are replaced by the image's mean colour
    (deletion) or, from the mean-colour image, restored (insertion), and
    the score is the mean probability of the image's class over its region.
    A map that ranks the pixels the score rests on first makes deletion fall
    fast (a low area under the curve) and insertion rise fast (a high one).

    Args:
        model: A segmentation model, or its `explain_attn.graph.ModelState`.
        images: ``(N, H, W, C)`` float32, or any input of
            `explain_attn.data.adapter.as_source`, read whole.
        maps: ``(N, H, W)`` maps at the images' resolution.
        classes: ``(N,)`` int classes explained.
        regions: ``(N, H, W)`` bool regions of the score (e.g. the
            unperturbed model's predicted mask of the class).
        steps: Steps of the curves.
        batch_size: Images per forward pass.

    Returns:
        ``{"deletion": (N,), "insertion": (N,)}`` float64 areas under the
        curves (trapezoid over the fraction of pixels, in [0, 1]); NaN for
        an image with an empty region.
    """
    state = model_state(model)
    model, images = state.model, all_images(images, input_shape(state))
    count, height, width = maps.shape
    order = np.argsort(-maps.reshape(count, -1), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(height * width)[None], axis=1)
    ranks = ranks.reshape(count, height, width)
    baseline = np.broadcast_to(
        images.mean(axis=(1, 2), keepdims=True), images.shape
    )
    curves = {"deletion": [], "insertion": []}
    for step in range(steps + 1):
        taken = (ranks < round(step / steps * height * width))[..., None]
        pairs = {
            "deletion": (baseline, images),
            "insertion": (images, baseline),
        }
        for name, (kept, other) in pairs.items():
            changed = np.where(taken, kept, other).astype(np.float32)
            curves[name].append(
                _region_scores(model, changed, classes, regions, batch_size)
            )
    return {
        name: np.trapezoid(np.stack(values, 1), dx=1.0 / steps, axis=1)
        for name, values in curves.items()
    }
