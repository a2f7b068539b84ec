"""The report's "Attention during training" section.

A model carries its record (`explain_attn.models.recorder`) as
``<model>.record.npz`` beside its ``.keras`` file, or, for the demo's
cached models, as ``record_file`` in its training information. For every
model with a record the section gives, per recorded epoch, the accuracy
(training, validation, probe images) and the mean of each recorded metric
of each spatial attention layer; the epoch at which each model first
reaches a few accuracy levels (how to check that attention "converges
faster"); and its figures (`training_figures`): a filmstrip of probe
images' maps across epochs and the curves.
"""

import dataclasses
from pathlib import Path

import numpy as np

from explain_attn.models.recorder import (
    epochs_to_reach,
    load_record,
    record_path,
)
from explain_attn.report import training_figures
from explain_attn.report.drawing import Drawing
from explain_attn.report.section import Computed, Section

__all__ = [
    "TrainingRecords",
    "TrainingSection",
    "THRESHOLDS",
    "filmstrip",
    "find_record",
    "training_record_section",
]

THRESHOLDS = (0.5, 0.7, 0.8, 0.9)
"""Accuracy levels of the "epochs to reach" table."""


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


def filmstrip_arguments(record, layer_index):
    """`training_figures.filmstrip`'s arguments for one spatial module of
    ``record`` (a `explain_attn.models.recorder.TrainingRecord`;
    ``layer_index``: the module's index in ``record.layers``)."""
    return (
        record.images,
        record.masks,
        record.maps[layer_index],
        record.epoch,
    )


def filmstrip(record, layer_index):
    """The probe images (objects outlined) and one module's maps over the
    recorded epochs, as a PNG data URI (`training_figures.filmstrip`).

    Args:
        record: A `explain_attn.models.recorder.TrainingRecord`.
        layer_index: Index of a spatial module in ``record.layers``.
    """
    return training_figures.filmstrip(*filmstrip_arguments(record, layer_index))


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

    def figures(self, results, attachments, data):
        section = results["training_record"].section
        if not section:
            return {}
        records = attachments["training_record"]
        metrics = ("mass_in_mask", "entropy")
        drawings = {
            "curves": Drawing(training_figures.curves, (section, metrics))
        }
        for row, index, _ in _spatial_layers(section, records):
            arguments = filmstrip_arguments(records[row["key"]], index)
            drawing = Drawing(training_figures.filmstrip, arguments)
            drawings[f"{row['key']}/{index}"] = drawing
        return drawings

    def context(self, report):
        section = report.description.training_record.section
        if not section:
            return {"training_figures": None}
        drawn = report.figures["training_record"]
        filmstrips = [
            (row["name"], layer["path"], drawn[f"{row['key']}/{index}"])
            for row, index, layer in _spatial_layers(section, report.records)
        ]
        return {
            "training_figures": {
                "curves": drawn["curves"],
                "filmstrips": filmstrips,
            }
        }


def _spatial_layers(section, records):
    """``(row, index, layer)`` of every recorded spatial module: the
    section's model row, the module's index in its record, its layer."""
    for row in section["models"]:
        for index, layer in enumerate(records[row["key"]].layers):
            if layer["spatial"]:
                yield row, index, layer
