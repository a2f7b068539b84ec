"""Per-class breakdown: accuracy, foreground metrics, confusion matrices.

Read from the report's per-image numbers (``data["per_image"]``), so it
needs no model. Metric means per class come with a Poisson-bootstrap
interval of `per_class_resamples` resamples: fewer than the main tables,
since there are classes x explanations x metrics of them.
"""

import numpy as np

from explain_attn import metrics
from explain_attn.metrics import FOREGROUND_METRICS
from explain_attn.report.section import Section

__all__ = [
    "PerClassSection",
    "PER_CLASS_RESAMPLES",
    "confusion_matrix",
    "per_class_resamples",
    "per_class_section",
]

PER_CLASS_RESAMPLES = 1_000
"""Most bootstrap resamples of a per-class metric interval."""
PER_CLASS_DRAWS = 1_000_000
"""Cap on resamples x images of one per-class interval."""


def per_class_resamples(count):
    """Resamples for a class of ``count`` images: `PER_CLASS_RESAMPLES` up
    to 1,000 images, then ``PER_CLASS_DRAWS // count``, at least 200."""
    return int(
        min(PER_CLASS_RESAMPLES, max(200, PER_CLASS_DRAWS // max(count, 1)))
    )


def confusion_matrix(labels, predictions, num_classes):
    """``(num_classes, num_classes)`` counts: row true, column predicted."""
    labels = np.asarray(labels, int)
    predictions = np.asarray(predictions, int)
    matrix = np.zeros((num_classes, num_classes), int)
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


def _accuracy_rows(labels, predictions, models, num_classes):
    rows = {}
    for model in models:
        predicted = np.asarray(predictions[model["key"]])
        rows[model["key"]] = [
            metrics.accuracy_interval(predicted[labels == label] == label)
            for label in range(num_classes)
        ]
    return rows


def _class_bootstraps(labels, num_classes, seed):
    """Per class, the `metrics.PoissonBootstrap` of its images (keyed by
    their index in the test set) with `per_class_resamples` replicates."""
    found = []
    for label in range(num_classes):
        members = np.flatnonzero(labels == label)
        found.append(
            metrics.PoissonBootstrap(
                members,
                num_resamples=per_class_resamples(len(members)),
                seed=seed,
            )
        )
    return found


def _metric_rows(labels, per_image_metrics, metric_names, num_classes, seed):
    rows = {}
    keyed = _class_bootstraps(labels, num_classes, seed)
    for explanation_id, values in per_image_metrics.items():
        rows[explanation_id] = {
            name: [
                metrics.summarize(
                    np.asarray(values[name], float)[labels == label],
                    bootstrap=keyed[label],
                )
                for label in range(num_classes)
            ]
            for name in metric_names
            if name in values
        }
    return rows


def per_class_section(data, *, seed=0):
    """Per-class accuracy, foreground metrics and confusion matrices.

    Args:
        data: The report's numbers so far (``models``, ``dataset`` and
            ``per_image`` are read; a null metric value is NaN).
        seed: Seed of the bootstrap intervals.

    Returns:
        A JSON-ready dict: ``class_names``, ``counts`` (test images per
        class), ``accuracy`` (model key -> per-class `accuracy_interval`),
        ``metrics`` (explanation id, or ``baseline:flat`` and
        ``baseline:centre``, -> metric -> per-class `summarize`; foreground
        metrics only) and ``confusion`` (model key -> matrix as
        nested lists, rows true, columns predicted).
    """
    class_names = list(data["dataset"]["class_names"])
    num_classes = len(class_names)
    per_image = data["per_image"]
    labels = np.asarray(per_image["labels"], int)
    per_image_metrics = {
        key: {
            name: [np.nan if v is None else v for v in values]
            for name, values in row.items()
        }
        for key, row in per_image["metrics"].items()
    }
    for key, row in per_image.get("baselines", {}).items():
        per_image_metrics[f"baseline:{key}"] = row
    return {
        "class_names": class_names,
        "counts": np.bincount(labels, minlength=num_classes).tolist(),
        "accuracy": _accuracy_rows(
            labels, per_image["predictions"], data["models"], num_classes
        ),
        "metrics": _metric_rows(
            labels,
            per_image_metrics,
            list(metrics.FOREGROUND_METRICS),
            num_classes,
            seed,
        ),
        "confusion": {
            key: confusion_matrix(labels, values, num_classes).tolist()
            for key, values in per_image["predictions"].items()
        },
    }


class PerClassSection(Section):
    """Per-class accuracy, foreground metrics and confusion matrices."""

    name = "per_class"
    partial = "_per_class.html"
    phase = "reading"

    def compute(self, run, observed, data):
        return per_class_section(data, seed=run.seed)

    def context(self, report):
        return {
            "per_class_resamples": PER_CLASS_RESAMPLES,
            "foreground_metrics": list(FOREGROUND_METRICS),
        }
