"""The segmentation report's explorer: every test image, its masks and maps.

The classification report's explorer (`explain_attn.report.explorer` and
``templates/_explorer.html``) fed with a segmentation pass: per image, the
classes of its true mask (the class filter keeps the images where a class
is present), each model's Dice, IoU and pixel accuracy, and each map's mass
in mask and Pearson correlation with the reference (the baseline's
Seg-Grad-CAM); its thumbnails are the image, the true mask, each model's
predicted mask (captioned with the image's Dice), each gate's map and each
model's Seg-Grad-CAM. There is no per-image prediction to call right or
wrong, so the payload's ``predictions`` is ``None``.
"""

from explain_attn.metrics.segmentation import image_scores
from explain_attn.report.explorer import thousandths, thumbnail_payload

__all__ = ["segmentation_explorer", "segmentation_per_image"]

MODEL_METRICS = ("dice", "iou", "pixel_accuracy")
MAP_METRICS = (("mass_in_mask", ""), ("pearson_with_reference", "agreement "))


def segmentation_per_image(state):
    """The report JSON's ``per_image``: every per-image number of a
    `SegmentationPass` (NaN where undefined), by model key or map key."""
    return {
        "labels": state.present,
        "dice": {k: image_scores(v).tolist() for k, v in state.dice.items()},
        "iou": {k: image_scores(v).tolist() for k, v in state.iou.items()},
        "pixel_accuracy": {k: v.tolist() for k, v in state.accuracy.items()},
        "mass_in_mask": {s.key: v.tolist() for s, v in state.mass.items()},
        "pearson_with_reference": {
            s.key: v.tolist() for s, v in state.agreement.items()
        },
    }


def _columns(per_image, state):
    """Columns and values (thousandths), and the predicted masks' Dice
    column by map key (their captions)."""
    columns, values, captions = [], [], {}
    for mask in state.thumbnails.label_maps[1:]:
        captions[mask.key] = len(columns)
        for metric in MODEL_METRICS:
            columns.append(
                {
                    "explanation": mask.key,
                    "label": "predicted mask",
                    "model": mask.model_key,
                    "metric": metric.replace("_", " "),
                }
            )
            values.append(thousandths(per_image[metric][mask.model_key]))
    for spec in state.specs:
        for metric, prefix in MAP_METRICS:
            if spec.key not in per_image[metric]:
                continue  # The reference has no agreement with itself.
            columns.append(
                {
                    "explanation": spec.key,
                    "label": spec.label.split(": ", 1)[-1],
                    "model": spec.model_key,
                    "metric": prefix + metric.replace("_", " "),
                }
            )
            values.append(thousandths(per_image[metric][spec.key]))
    return columns, values, captions


def segmentation_explorer(data, state):
    """The explorer's payload (`explain_attn.report.explorer.explorer_payload`'s
    keys) of a segmentation report's ``data`` and its pass ``state``."""
    per_image = data["per_image"]
    columns, values, captions = _columns(per_image, state)
    return {
        "classes": list(data["dataset"]["labels"][1:]),
        "labels": per_image["labels"],
        "models": [
            {"key": row["key"], "name": row["name"]} for row in data["models"]
        ],
        "predictions": None,
        "columns": columns,
        "values": values,
        "thumbnails": thumbnail_payload(state.thumbnails.result, captions),
        "metric": "dice",
    }
