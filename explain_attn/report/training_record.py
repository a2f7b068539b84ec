"""The report's "Attention during training" section.

A model carries its record (`explain_attn.models.recorder`) as
``<model>.record.npz`` beside its ``.keras`` file, or, for the demo's
cached models, as ``record_file`` in its training information. For every
model with a record the section gives, per recorded epoch, the accuracy
(training, validation, probe images) and the mean of each recorded metric
of each spatial attention layer; the epoch at which each model first
reaches a few accuracy levels (how to check that attention "converges
faster"); and, drawn by `training_figures`, a filmstrip of probe images'
maps across epochs and the curves.
"""

import dataclasses
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from skimage.segmentation import find_boundaries

from explain_attn.models.recorder import (
    epochs_to_reach,
    load_record,
    record_path,
)
from explain_attn.overlays import OVERLAY_COLORMAP
from explain_attn.report.figures import to_data_uri
from explain_attn.report.section import Computed, Section

__all__ = [
    "TrainingRecords",
    "TrainingSection",
    "THRESHOLDS",
    "find_record",
    "training_figures",
    "training_record_section",
]

THRESHOLDS = (0.5, 0.7, 0.8, 0.9)
"""Accuracy levels of the "epochs to reach" table."""

FILMSTRIP_IMAGES = 4
FILMSTRIP_COLUMNS = 6


def find_record(entry):
    """The record file of a `ReportModel`, or ``None``."""
    training = entry.training or {}
    candidates = [training.get("record_file")]
    if entry.file:
        candidates.append(record_path(entry.file))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def _accuracy_log(record):
    for name in ("val_accuracy", "accuracy"):
        if name in record.logs:
            return name
    return "probe_accuracy"


def _model_section(entry, record, path):
    log = _accuracy_log(record)
    layers = []
    for layer, values in zip(record.layers, record.metrics, strict=True):
        if layer["spatial"]:
            layers.append(
                {
                    "path": layer["path"],
                    "metrics": {
                        name: np.nanmean(array, axis=1).tolist()
                        if np.isfinite(array).any()
                        else [None] * len(array)
                        for name, array in values.items()
                    },
                }
            )
    return {
        "key": entry.key,
        "name": entry.name,
        "role": entry.role,
        "file": str(path),
        "epochs": record.epoch.tolist(),
        "logs": {k: v.tolist() for k, v in record.logs.items()},
        "probe_accuracy": record.probe_accuracy.tolist(),
        "probe_images": int(len(record.labels)),
        "layers": layers,
        "accuracy_log": log,
        "epochs_to_reach": {
            f"{threshold:.0%}": epochs_to_reach(record, threshold, log=log)
            for threshold in THRESHOLDS
        },
        "recording_seconds": record.meta.get("seconds"),
        "warnings": list(record.meta.get("warnings", [])),
    }


def training_record_section(models):
    """``(section, records)`` for the models that carry a record.

    Args:
        models: The report's `ReportModel` list.

    Returns:
        ``section``: ``{"models": [...]}`` JSON-ready (empty dict when no
        model has a record); ``records``: model key -> `TrainingRecord`,
        for the figures. A record that cannot be read is skipped.
    """
    rows, records = [], {}
    for entry in models:
        path = find_record(entry)
        if path is None:
            continue
        try:
            record = load_record(path)
        except ValueError:
            continue
        records[entry.key] = record
        rows.append(_model_section(entry, record, path))
    return ({"models": rows} if rows else {}), records


def _columns(count):
    """Up to `FILMSTRIP_COLUMNS` record indices, first and last included."""
    if count <= FILMSTRIP_COLUMNS:
        return list(range(count))
    return sorted(
        {int(round(i)) for i in np.linspace(0, count - 1, FILMSTRIP_COLUMNS)}
    )


def _filmstrip(record, layer_index):
    maps = record.maps[layer_index]
    rows = min(FILMSTRIP_IMAGES, len(record.labels))
    columns = _columns(len(record.epoch))
    figure = Figure(figsize=(1.4 * (len(columns) + 1), 1.4 * rows))
    axes = figure.subplots(rows, len(columns) + 1, squeeze=False)
    for row in range(rows):
        image = record.images[row]
        shown = image[..., 0] if image.shape[-1] == 1 else image
        low, high = float(shown.min()), float(shown.max())
        shown = (shown - low) / (high - low) if high > low else shown * 0
        axes[row, 0].imshow(shown, cmap="gray" if shown.ndim == 2 else None)
        if record.masks is not None:
            outline = find_boundaries(record.masks[row], mode="inner")
            axes[row, 0].contour(outline, levels=[0.5], colors="cyan")
        for column, index in enumerate(columns, start=1):
            axes[row, column].imshow(
                maps[index, row], cmap=OVERLAY_COLORMAP, vmin=0, vmax=1
            )
            if row == 0:
                axes[row, column].set_title(
                    f"epoch {record.epoch[index]:g}", fontsize=8
                )
    for axis in axes.ravel():
        axis.set_xticks([])
        axis.set_yticks([])
    figure.tight_layout()
    return to_data_uri(figure)


def _curves(section, metric_names):
    figure = Figure(figsize=(10, 3))
    accuracy_axis, metric_axis = figure.subplots(1, 2)
    for row in section["models"]:
        log = row["accuracy_log"]
        values = row["logs"].get(log, row["probe_accuracy"])
        accuracy_axis.plot(row["epochs"], values, marker=".", label=row["name"])
        for layer in row["layers"]:
            for name in metric_names:
                if name in layer["metrics"]:
                    metric_axis.plot(
                        row["epochs"],
                        [
                            np.nan if v is None else v
                            for v in layer["metrics"][name]
                        ],
                        marker=".",
                        label=f"{row['name']} {layer['path']} {name}",
                    )
    accuracy_axis.set_title("accuracy (validation where recorded)", fontsize=10)
    metric_axis.set_title("attention metrics, mean over probe", fontsize=10)
    for axis in (accuracy_axis, metric_axis):
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        if axis.lines:
            axis.legend(fontsize=6)
    figure.tight_layout()
    return to_data_uri(figure)


def training_figures(section, records):
    """The section's figures as PNG data URIs.

    Returns:
        ``{"curves": uri, "filmstrips": [(model name, layer path, uri)]}``,
        or ``None`` without a section.
    """
    if not section:
        return None
    filmstrips = []
    for row in section["models"]:
        record = records[row["key"]]
        for index, layer in enumerate(record.layers):
            if layer["spatial"]:
                filmstrips.append(
                    (row["name"], layer["path"], _filmstrip(record, index))
                )
    return {
        "curves": _curves(section, ("mass_in_mask", "entropy")),
        "filmstrips": filmstrips,
    }


def filmstrip(record, layer_index):
    """The probe images (objects outlined) and one module's maps over the
    recorded epochs, as a PNG data URI (the figure of `training_figures`).

    Args:
        record: A `explain_attn.models.recorder.TrainingRecord`.
        layer_index: Index of a spatial module in ``record.layers``.
    """
    return _filmstrip(record, layer_index)


@dataclasses.dataclass(frozen=True)
class TrainingRecords:
    """The "Attention during training" section's result.

    Attributes:
        section: ``report.json``'s ``training_record`` (``{"models":
            [...]}``, see `training_record_section`), empty when no model
            has a record.
        checks: Model key -> the record's check of the attention during
            training, for the models whose training information has none
            (it joins their ``training`` row, which the warnings read).
    """

    section: dict
    checks: dict

    def keys(self, data):
        """``training_record`` (when a model has one) and ``data``'s
        ``models`` with the checks in their ``training``."""
        keys = {"training_record": self.section} if self.section else {}
        if self.checks:
            keys["models"] = [
                _with_check(row, self.checks.get(row["key"]))
                for row in data["models"]
            ]
        return keys


def _with_check(row, check):
    if not check:
        return row
    return {**row, "training": {**(row.get("training") or {}), "check": check}}


class TrainingSection(Section):
    """ "Attention during training", for the models that carry a record;
    its records (`TrainingRecord`) are the section's attachment."""

    name = "training_record"
    partial = "_training.html"

    def compute(self, run, observed, data):
        section, records = training_record_section(run.models)
        checks = {}
        for row in data["models"]:  # The record's check, for the warnings.
            check = getattr(records.get(row["key"]), "meta", {}).get("check")
            if check and not (row.get("training") or {}).get("check"):
                checks[row["key"]] = check
        result = TrainingRecords(section, checks)
        return Computed(result, attachment=records)

    def keys(self, result, data):
        return result.keys(data)

    def shown(self, report):
        return bool(report.description.training_record.section)

    def context(self, report):
        return {
            "training_figures": training_figures(
                report.description.training_record.section or None,
                report.records,
            )
        }
