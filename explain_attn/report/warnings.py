"""Warnings that stop a misleading read, shown at the top of the report.

Each check returns warnings as dicts ``{"kind", "subject", "text",
"section"}`` (``section``: the id of the report section to read next):

- ``majority_class``: a model whose accuracy's Wilson interval does not
  rise above the share of the test split's largest class (what always
  answering that class scores).
- ``constant_map`` / ``saturated_map`` / ``one_pixel_map``: an explanation
  whose maps are constant on most images, an attention gate whose values
  sit within `SATURATION_TOLERANCE` of its bounds (0 and 1: every attention
  kind explain-attn reads is a sigmoid gate), or maps of 1 x 1 pixel.
- ``train_inference``: a model whose training record has accuracies in
  training mode and in inference mode that disagree (the record's
  ``train_inference`` entry, ``{"training_mode": accuracy,
  "inference_mode": accuracy}``, on the same images).
- ``mask_area``: masks covering almost all or almost none of the image,
  where foreground metrics cannot tell a good map from a flat one.
- ``no_feature_map``: a model without a 4-D feature map (a pure
  transformer such as keras-hub's ViT), whose report has its attention
  maps and no Grad-CAM.
- ``section_failed``: a section left out because its stage failed while
  the report was built within a `explain_attn.stages.recording` (as
  ``explain-attn report`` builds it); the rest of the report is complete.
"""

import numpy as np

from explain_attn import metrics
from explain_attn.explanations.methods import get_method
from explain_attn.report.contributions import (
    Contributor,
    Part,
    block_sum,
    chunk_length,
)
from explain_attn.report.section import Section
from explain_attn.stages import current_log

__all__ = [
    "WarningsSection",
    "MAJORITY_MARGIN",
    "MapStatistics",
    "MaskShares",
    "majority_warnings",
    "map_warnings",
    "mask_area_warnings",
    "mask_shares",
    "mask_warnings",
    "no_feature_map_warnings",
    "skipped_section_warnings",
    "training_warnings",
]

SATURATION_TOLERANCE = 0.01
"""A gate value within this distance of 0 or 1 counts as saturated."""
SATURATED_SHARE = 0.9
"""Warn when at least this share of an attention map's values is saturated."""
CONSTANT_SHARE = 0.5
"""Warn when at least this share of images has a constant map."""
MASK_LARGE, MASK_SMALL, MASK_SHARE = 0.9, 0.01, 0.25
"""Warn when ``MASK_SHARE`` of the masks cover more than ``MASK_LARGE`` or
less than ``MASK_SMALL`` of their image."""
TRAIN_INFERENCE_GAP = 0.1
"""Warn when training- and inference-mode accuracies differ by more."""
MAJORITY_MARGIN = 0.0
"""A model must beat the majority share by more than this (Wilson low end)."""


COUNTS = ("images", "constant", "values", "saturated")
"""The counts `MapStatistics` adds up, in the order of its blocks."""


def _map_counts(explanation, values):
    """``(4,)`` int64 counts (`COUNTS`) of one chunk's maps."""
    flat = np.asarray(values, np.float64).reshape(len(values), -1)
    spread = flat.max(axis=1) - flat.min(axis=1)
    counts = [len(flat), int((spread <= 1e-7).sum()), 0, 0]
    if explanation.is_attention:
        near = (flat <= SATURATION_TOLERANCE) | (
            flat >= 1 - SATURATION_TOLERANCE
        )
        counts[2:] = [flat.size, int(near.sum())]
    return np.array(counts, np.int64)


class MapStatistics(Contributor):
    """An `evaluate` contributor: per explanation, how constant and how
    saturated its maps are, and their shape.

    Args:
        explanations: The explanations whose maps are counted (``()``:
            those of the maps seen, in their order); needed to read back a
            part combined elsewhere.

    Its result (`reduce`): `Explanation` -> dict with ``images``,
    ``constant`` (images whose map is constant), ``values``,
    ``saturated`` (values within `SATURATION_TOLERANCE` of 0 or 1;
    attention only) and ``shape`` (the maps' ``(h, w)``).
    """

    def __init__(self, explanations=()):
        super().__init__()
        self._explanations = {e.key: e for e in explanations}

    def contribute(self, start, images, maps, labels=None, masks=None):
        """Blocks ``(explanation key, "counts")``: `COUNTS` of the chunk;
        ``(explanation key, "shape")``: the maps' ``(h, w)``."""
        blocks = {}
        for explanation, values in maps.items():
            self._explanations.setdefault(explanation.key, explanation)
            blocks[explanation.key, "counts"] = _map_counts(
                explanation, values
            )[None]
            blocks[explanation.key, "shape"] = np.array([values.shape[1:]])
        length = chunk_length(*maps.values(), images, labels, masks)
        return Part(start, start + length, blocks=blocks)

    def reduce(self, total):
        if total is None:
            return {}
        found = {}
        for key, explanation in self._explanations.items():
            if (key, "counts") not in total.blocks:
                continue
            counts = block_sum(total.blocks[key, "counts"])
            row = {name: int(n) for name, n in zip(COUNTS, counts, strict=True)}
            row["shape"] = [int(n) for n in total.blocks[key, "shape"][0]]
            found[explanation] = row
        return found


def _warning(kind, subject, text, section):
    return {"kind": kind, "subject": subject, "text": text, "section": section}


def map_warnings(statistics):
    """Warnings for constant, saturated and 1 x 1 maps.

    Args:
        statistics: The `MapStatistics` result.
    """
    found = []
    for explanation, row in statistics.items():
        label = explanation.label
        if row["shape"] == [1, 1]:
            found.append(
                _warning(
                    "one_pixel_map",
                    label,
                    f"{label}: the maps are 1×1, so they cannot say where "
                    "the model looks; every foreground metric is at chance. "
                    "Choose an earlier layer (--layer).",
                    "explanations",
                )
            )
            continue
        constant = row["constant"] / max(row["images"], 1)
        if constant >= CONSTANT_SHARE:
            found.append(
                _warning(
                    "constant_map",
                    label,
                    f"{label}: the map is constant on {constant:.0%} of the "
                    f"{row['images']:,} test images, so it shows no place; "
                    "its metrics there are undefined or at chance.",
                    "explanations",
                )
            )
            continue
        saturated = row["saturated"] / max(row["values"], 1)
        if row["values"] and saturated >= SATURATED_SHARE:
            found.append(
                _warning(
                    "saturated_map",
                    label,
                    f"{label}: {saturated:.0%} of the gate's values lie "
                    f"within {SATURATION_TOLERANCE} of 0 or 1: the gate is "
                    "saturated and acts as an on/off switch, so small "
                    "differences in the map carry no information.",
                    "explanations",
                )
            )
    return found


def majority_warnings(models, labels, class_names):
    """Warnings for models not better than always answering the majority.

    Args:
        models: The report's model rows (with ``name`` and ``accuracy``,
            a `metrics.accuracy_interval` dict).
        labels: ``(N,)`` test labels.
        class_names: The class names.
    """
    labels = np.asarray(labels)
    counts = np.bincount(labels, minlength=len(class_names))
    majority = int(np.argmax(counts))
    share = counts[majority] / max(len(labels), 1)
    found = []
    for model in models:
        accuracy = model["accuracy"]
        low = accuracy["ci_low"]
        if low is None or not np.isfinite(low):
            continue
        if low <= share + MAJORITY_MARGIN:
            found.append(
                _warning(
                    "majority_class",
                    model["name"],
                    f"{model['name']} is not better than always answering "
                    f"the majority class {class_names[majority]!r}: "
                    f"{100 * accuracy['accuracy']:.1f}% "
                    f"[{100 * low:.1f}, {100 * accuracy['ci_high']:.1f}] "
                    f"against {100 * share:.1f}% "
                    f"({counts[majority]:,} of {len(labels):,} test images). "
                    "Its maps explain a model that has not learnt the task.",
                    "models",
                )
            )
    return found


def mask_shares(masks):
    """``(N,)`` float64: the share of each ``(H, W)`` mask's pixels that are
    foreground."""
    masks = np.asarray(masks, bool)
    return masks.reshape(len(masks), -1).mean(axis=1)


class MaskShares(Contributor):
    """An `evaluate` contributor keeping each test mask's foreground share
    (`mask_shares`), all that `mask_area_warnings` needs.

    Its result (`reduce`): ``(N,)`` float64, or ``None`` when the data
    has no masks.
    """

    def contribute(self, start, images, maps, labels=None, masks=None):
        """Row ``("shares",)``: each mask's share; none without masks."""
        stop = start + chunk_length(images, labels, masks)
        if masks is None:
            return Part(start, stop)
        return Part(start, stop, {("shares",): mask_shares(masks)})

    def reduce(self, total):
        return None if total is None else total.rows.get(("shares",))


def mask_warnings(masks):
    """Warnings for masks covering almost all or almost none of the image.

    Args:
        masks: ``(N, H, W)`` bool, or ``None`` (no warning).
    """
    return mask_area_warnings(None if masks is None else mask_shares(masks))


def mask_area_warnings(shares):
    """`mask_warnings` from the masks' foreground shares (`mask_shares`).

    Args:
        shares: ``(N,)`` shares in [0, 1], or ``None`` (no warning).
    """
    if shares is None:
        return []
    shares = np.asarray(shares, np.float64)
    found = []
    large = float((shares > MASK_LARGE).mean())
    small = float((shares < MASK_SMALL).mean())
    if large >= MASK_SHARE:
        found.append(
            _warning(
                "mask_area",
                "masks",
                f"{large:.0%} of the masks cover more than "
                f"{MASK_LARGE:.0%} of their image: any map puts most of its "
                "mass on the object there. Read the foreground metrics "
                "against the flat map's row.",
                "explanations",
            )
        )
    if small >= MASK_SHARE:
        found.append(
            _warning(
                "mask_area",
                "masks",
                f"{small:.0%} of the masks cover less than "
                f"{MASK_SMALL:.0%} of their image (empty masks give no "
                "value): foreground metrics rest on a few pixels there.",
                "explanations",
            )
        )
    return found


def training_warnings(models):
    """Warnings from what is known of the models' training.

    Reads ``training["check"]`` (`explain_attn.models.training.
    TrainingCheck.as_dict`, written by `explain-attn train` and the demo) or
    ``training["train_inference"]`` (``training_mode``/``inference_mode``).
    """
    found = []
    for model in models:
        training_info = model.get("training") or {}
        check = training_info.get("check") or {}
        record = training_info.get("train_inference") or {
            "training_mode": check.get("training_mode_accuracy"),
            "inference_mode": check.get("inference_accuracy"),
        }
        training = record.get("training_mode")
        inference = record.get("inference_mode")
        if training is None or inference is None:
            continue
        if abs(training - inference) > TRAIN_INFERENCE_GAP:
            found.append(
                _warning(
                    "train_inference",
                    model["name"],
                    f"{model['name']}: accuracy in training mode "
                    f"({100 * training:.1f}%) and in inference mode "
                    f"({100 * inference:.1f}%) disagree on the same "
                    "images: layers that behave differently at inference "
                    "(batch normalisation, dropout) change the model the "
                    "maps explain.",
                    "models",
                )
            )
    return found


def class_counts(labels, num_classes):
    """``(num_classes,)`` counts of each label."""
    return np.bincount(np.asarray(labels), minlength=num_classes)


def majority_share(labels, num_classes):
    """The share of the largest class, with its accuracy interval keys."""
    counts = class_counts(labels, num_classes)
    correct = np.asarray(labels) == int(np.argmax(counts))
    return metrics.accuracy_interval(correct)


SECTION_TITLES = {"faithfulness": "Faithfulness"}
"""The report's sections that can be left out when their stage fails."""


def no_feature_map_warnings(models, explanations):
    """``no_feature_map``: the models without a Grad-CAM explanation
    because they have no 4-D feature map.

    Args:
        models: The report's ``models`` rows (``key``, ``name``).
        explanations: The report's ``explanations`` rows (``model``,
            ``method``).
    """
    with_cam = {
        e["model"] for e in explanations if get_method(e["method"]).uses_class
    }
    return [
        _warning(
            "no_feature_map",
            row["name"],
            f"{row['name']} has no layer with a 4-D output (batch, H, W, C), "
            "so it has no Grad-CAM: its attention maps are shown alone.",
            "gallery",
        )
        for row in models
        if row["key"] not in with_cam
    ]


def skipped_section_warnings():
    """``section_failed``: the sections the recorded run left out.

    Reads the `explain_attn.stages.StageLog` being recorded (none: no
    warning).
    """
    log = current_log()
    found = []
    for skipped in log.skipped if log is not None else ():
        title = SECTION_TITLES.get(skipped.section, skipped.section)
        found.append(
            _warning(
                "section_failed",
                skipped.section,
                f"The {title} section is missing: {skipped.description} "
                f"failed after {skipped.seconds:.1f} s ({skipped.reason}). "
                "Every other section is complete.",
                "warnings",
            )
        )
    return found


class WarningsSection(Section):
    """What may make the numbers misleading: skipped sections, majority
    classes, training, maps and masks (observed during the pass)."""

    name = "warnings"
    partial = "_warnings.html"
    phase = "reading"

    def contributors(self, run):
        return {
            "masks": MaskShares(),
            "maps": MapStatistics(run.explanations),
        }

    def compute(self, run, observed, data):
        test = run.test
        return (
            skipped_section_warnings()
            + majority_warnings(data["models"], test.labels, test.class_names)
            + training_warnings(data["models"])
            + map_warnings(observed["maps"])
            + mask_area_warnings(observed["masks"])
            + no_feature_map_warnings(data["models"], data["explanations"])
        )
