"""The report for segmentation models: do the gates help, where do they look?

The same questions as the classification report, asked of U-Nets:

- "Does attention help?": Dice and IoU per image (the mean over the
  foreground classes defined in it, `explain_attn.metrics.segmentation`)
  and per class, their means with 95 % bootstrap intervals, the paired
  difference attention − baseline on the same images with its interval,
  and pixel accuracy; the majority label predicted everywhere as the floor.
- "Where does it look?": every gate's map and every model's Seg-Grad-CAM
  against the true foreground (mass in mask), with the flat and centre
  maps as baselines, and each map's Pearson correlation with the
  baseline's Seg-Grad-CAM (the reference).

- "Attention during training": for models that carry an
  `explain_attn.models.recorder` record (``explain-attn train --task
  segmentation``), each gate's mass in mask per epoch and its filmstrip.

- Faithfulness: each gate replaced (uniform, shuffled, inverted, the true
  mask) on a seeded sample, measured as the change in Dice; the
  model-parameter randomisation check of every gate and Seg-Grad-CAM; and
  deletion and insertion on the region score, each map against a random
  one (`explain_attn.faithfulness.segmentation`).

- The explorer (`explain_attn.report.segmentation_explorer`): every test
  image with its true and predicted masks, maps and per-image numbers
  (also in the JSON's ``per_image``).
"""

import dataclasses
import datetime

import numpy as np

from explain_attn.data.loaders import take_images
from explain_attn.explanations.methods import METHODS
from explain_attn.faithfulness.segmentation import (
    explained_classes,
    gate_interventions,
    region_deletion,
    segmentation_gates,
    segmentation_randomization,
)
from explain_attn.metrics.statistics import paired_difference, summarize
from explain_attn.models.recorder import load_record
from explain_attn.options import RunOptions
from explain_attn.report.segmentation_evaluate import (
    PreparedModel,
    evaluate_segmentation,
)
from explain_attn.report.segmentation_explorer import (
    segmentation_explorer,
    segmentation_per_image,
)
from explain_attn.report.segmentation_targets import target_encoding
from explain_attn.report.training_record import find_record

__all__ = [
    "SegmentationDescription",
    "check_unsharded",
    "segmentation_report",
    "training_records",
]


@dataclasses.dataclass(frozen=True)
class SegmentationDescription:
    """What a segmentation report found: its keys of ``report.json``, in
    order, built once (`segmentation_report`) and never changed."""

    task: str
    models: list
    """One row per model: Dice, IoU, pixel accuracy, per class, training."""
    differences: list
    """Each attention model minus the baseline, paired per image."""
    majority: dict
    """The floor: the majority label predicted everywhere."""
    maps: list
    """Every gate's and Seg-Grad-CAM's mass in mask, with baselines."""
    warnings: list
    findings: list
    dataset: dict
    settings: dict
    versions: dict
    faithfulness: dict | None
    training_record: list | None
    per_image: dict

    def to_json(self):
        """``report.json``'s numbers (the fields, in order)."""
        return {
            field.name: getattr(self, field.name)
            for field in dataclasses.fields(self)
        }


def check_unsharded(options):
    """Refuses the shards of a segmentation report (``options["shard"]``:
    ``--shard-index`` or ``--dask``), not supported yet."""
    if options.get("shard") is not None:
        raise ValueError(
            "--shard-index and --dask do not support segmentation models yet "
            "(their report is one pass). Run the report without them."
        )


def training_records(models):
    """``(section, records)``: each recorded model's gates' mean mass in
    mask per epoch (JSON-ready) and its `TrainingRecord` by model key."""
    rows, records = [], {}
    for entry in models:
        path = find_record(entry)
        if path is None:
            continue
        record = load_record(path)
        records[entry.key] = record
        layers = [
            {
                "path": layer["path"],
                "index": index,
                "mass_in_mask": np.nanmean(values["mass_in_mask"], 1).tolist(),
            }
            for index, (layer, values) in enumerate(
                zip(record.layers, record.metrics, strict=True)
            )
            if layer["spatial"] and "mass_in_mask" in values
        ]
        row = {"key": entry.key, "name": entry.name, "layers": layers}
        if layers:  # A control's record holds no gate.
            rows.append({**row, "epochs": record.epoch.tolist()})
    return rows, records


def _faithfulness(models, test, encoding, settings, options):
    """The gate interventions on a seeded sample (``None``: off)."""
    gated = [
        entry
        for entry in models
        if entry.role == "attention" and segmentation_gates(entry.state)
    ]
    if settings is None or not gated:
        return None
    count = min(settings.intervention_images, len(test.labels))
    rng = np.random.default_rng(options.seed)
    sample = take_images(
        test, sorted(rng.choice(len(test.labels), count, replace=False))
    )
    targets = encoding(sample.labels, sample.masks)
    randomization = _randomization(models, test, encoding, settings, options)
    rows = [
        {
            "key": entry.key,
            "name": entry.name,
            "gates": gate_interventions(
                entry.state,
                sample.images,
                targets,
                encoding,
                seed=options.seed,
                batch_size=options.batch_size,
            ),
        }
        for entry in gated
    ]
    deletion = _deletion(models, test, encoding, settings, options)
    return {
        "images": count,
        "models": rows,
        "randomization": randomization,
        "deletion": deletion,
    }


def _deletion_rows(entry, images, encoding, settings, options):
    """One model's maps (and a random map) on the region score's curves."""
    shape = images.shape[1:3]
    prepared = PreparedModel(entry, shape, None)
    classes = explained_classes(
        entry.state, images, encoding, options.batch_size
    )
    predicted = encoding.predicted(
        entry.model.predict(images, batch_size=options.batch_size, verbose=0)
    )
    wanted = classes if encoding.num_outputs > 1 else np.ones_like(classes)
    regions = predicted == wanted[:, None, None]
    maps = prepared.maps(images, classes.astype(np.int32), None)
    labels = {spec.label: values for spec, values in maps.items()}
    rng = np.random.default_rng(options.seed)
    labels[f"{entry.key}: random map"] = rng.random(regions.shape)
    rows = []
    for label, values in labels.items():
        curves = region_deletion(
            entry.state,
            images,
            values,
            classes,
            regions,
            steps=settings.steps,
            batch_size=options.batch_size,
        )
        rows.append(
            {
                "label": label,
                "model": entry.key,
                "deletion": summarize(curves["deletion"], seed=options.seed),
                "insertion": summarize(curves["insertion"], seed=options.seed),
            }
        )
    return rows


def _deletion(models, test, encoding, settings, options):
    """Deletion and insertion on each model's region score."""
    count = min(settings.deletion_images, len(test.labels))
    rng = np.random.default_rng(options.seed + 2)
    indices = sorted(rng.choice(len(test.labels), count, replace=False))
    images = take_images(test, indices).images
    rows = []
    for entry in models:
        rows += _deletion_rows(entry, images, encoding, settings, options)
    return {"images": count, "steps": settings.steps, "rows": rows}


def _randomization(models, test, encoding, settings, options):
    """Each model's randomisation checks on a seeded sample."""
    count = min(settings.randomization_images, len(test.labels))
    rng = np.random.default_rng(options.seed + 1)
    indices = sorted(rng.choice(len(test.labels), count, replace=False))
    images = take_images(test, indices).images
    return [
        {
            "key": entry.key,
            "name": entry.name,
            **segmentation_randomization(
                entry.state,
                images,
                encoding,
                seed=options.seed,
                batch_size=options.batch_size,
                cam_layer=None,
            ),
        }
        for entry in models
    ]


def _check_models(models, cam_class):
    if cam_class not in ("predicted", "true"):
        raise ValueError(
            "--cam-class for a segmentation report is 'predicted' (the "
            "predicted mask) or 'true' (the true mask). Received: "
            f"--cam-class {cam_class}"
        )
    encodings = {tuple(e.model.outputs[0].shape[1:]) for e in models}
    if len(encodings) > 1:
        raise ValueError(
            "The segmentation models predict different outputs "
            f"({', '.join(map(str, sorted(encodings)))}); a report compares "
            "models on the same label maps. Give models of one output."
        )


def _model_rows(models, state, encoding, seed):
    rows = []
    for entry in models:
        dice = state.dice[entry.key]
        iou = state.iou[entry.key]
        rows.append(
            {
                "key": entry.key,
                "name": entry.name,
                "role": entry.role,
                "parameters": int(entry.model.count_params()),
                "training": entry.training,
                "dice": summarize(_image(dice), seed=seed),
                "iou": summarize(_image(iou), seed=seed),
                "pixel_accuracy": summarize(
                    state.accuracy[entry.key], seed=seed
                ),
                "per_class": [
                    {
                        "label": name,
                        "dice": summarize(dice[:, k], seed=seed),
                        "iou": summarize(iou[:, k], seed=seed),
                    }
                    for k, name in enumerate(encoding.label_names[1:])
                ],
            }
        )
    return rows


def _image(per_class):
    from explain_attn.metrics.segmentation import image_scores

    return image_scores(per_class)


def _differences(models, state, seed):
    baseline = models[-1].key
    rows = []
    for entry in models[:-1]:
        row = {"model": entry.key, "baseline": baseline}
        for name, store in (("dice", state.dice), ("iou", state.iou)):
            row[name] = paired_difference(
                _image(store[entry.key]), _image(store[baseline]), seed=seed
            )
        rows.append(row)
    return rows


def _majority(state, encoding):
    """The floor: the most frequent label predicted on every pixel."""
    counts = state.label_counts
    label = int(np.argmax(counts))
    total = int(counts.sum())
    return {
        "label": encoding.label_names[label],
        "pixel_accuracy": float(counts[label] / total) if total else np.nan,
        # Everywhere one label: Dice 0 on every image with another class,
        # and the label's own Dice where it is the only one present.
        "dice": 0.0 if label == 0 else np.nan,
    }


def _map_rows(state, seed):
    rows = []
    for spec in state.specs:
        agreement = state.agreement.get(spec)
        rows.append(
            {
                "model": spec.model_key,
                "method": spec.method,
                "layer": spec.layer,
                "label": spec.label,
                "reference": spec == state.reference,
                "mass_in_mask": summarize(state.mass[spec], seed=seed),
                "pearson_with_reference": (
                    None
                    if agreement is None
                    else summarize(agreement, seed=seed)
                ),
            }
        )
    for name, values in state.baselines.items():
        rows.append(
            {
                "model": None,
                "method": "baseline",
                "layer": name,
                "label": f"{name} map (baseline)",
                "reference": False,
                "mass_in_mask": summarize(values, seed=seed),
                "pearson_with_reference": None,
            }
        )
    return rows


def _warnings(rows, majority, map_rows):
    warnings = []
    for row in rows:
        accuracy = row["pixel_accuracy"]["mean"]
        if accuracy <= majority["pixel_accuracy"]:
            warnings.append(
                f"{row['name']}: pixel accuracy {accuracy:.3f} does not beat "
                f"predicting '{majority['label']}' everywhere "
                f"({majority['pixel_accuracy']:.3f})."
            )
        dice = row["dice"]["mean"]
        if not dice > (
            majority["dice"] if np.isfinite(majority["dice"]) else 0
        ):
            warnings.append(
                f"{row['name']}: mean Dice {dice:.3f} does not beat "
                f"predicting '{majority['label']}' everywhere (Dice "
                f"{0.0:.3f} on the foreground): it has learnt nothing usable."
            )
    warnings += _class_warnings(rows)
    for row in map_rows:
        zeros = row["mass_in_mask"]["nan_count"]
        if zeros and row["method"] != "baseline":
            warnings.append(
                f"{row['label']}: the map is all zero (or the image has no "
                f"object) on {zeros} image(s); their mass in mask is "
                "undefined and left out."
            )
    empty = rows[0]["dice"]["nan_count"]
    if empty:
        warnings.append(
            f"{empty} test image(s) have no foreground, true or predicted by "
            f"{rows[0]['name']}: their Dice is undefined and left out."
        )
    return warnings


def _class_warnings(rows):
    """A class whose mean Dice is 0: never predicted where it is (with
    several classes, the image mean hides it)."""
    warnings = []
    for row in rows:
        for item in row["per_class"] if len(row["per_class"]) > 1 else ():
            if item["dice"]["mean"] == 0:
                warnings.append(
                    f"{row['name']}: class '{item['label']}' has a mean Dice "
                    "of 0.000: the model never predicts it where it is."
                )
    return warnings


def _findings(rows, differences, map_rows):
    findings = []
    for row in differences:
        dice = row["dice"]
        verdict = (
            "higher"
            if dice["ci_low"] > 0
            else "lower"
            if dice["ci_high"] < 0
            else "not clearly different"
        )
        findings.append(
            f"{row['model']} vs {row['baseline']}: Dice difference "
            f"{dice['mean_difference']:+.3f} [{dice['ci_low']:+.3f}, "
            f"{dice['ci_high']:+.3f}] — {verdict}."
        )
    # Rows of registered methods (the flat and centre maps are "baseline").
    gates = [
        r
        for r in map_rows
        if r["method"] in METHODS and METHODS[r["method"]].is_attention
    ]
    for row in gates:
        findings.append(
            f"Gate {row['layer']} puts {row['mass_in_mask']['mean']:.1%} of "
            "its mass on the objects."
        )
    return findings


def _dataset(test, encoding, source):
    return {
        "name": test.name,
        "source": str(source),
        "num_images": len(test.labels),
        "image_shape": [int(n) for n in test.image_shape],
        "labels": list(encoding.label_names),
    }


def _numbers(models, state, encoding, seed):
    """The report's summaries: models, differences, maps, the floor, the
    findings and warnings."""
    rows = _model_rows(models, state, encoding, seed)
    differences = _differences(models, state, seed)
    majority = _majority(state, encoding)
    map_rows = _map_rows(state, seed)
    return {
        "task": "segmentation",
        "models": rows,
        "differences": differences,
        "majority": majority,
        "maps": map_rows,
        "warnings": _warnings(rows, majority, map_rows),
        "findings": _findings(rows, differences, map_rows),
    }  # The first fields of a `SegmentationDescription`.


def segmentation_report(
    models,
    test,
    *,
    cam_layer=None,
    cam_class="predicted",
    num_examples=6,
    seed=0,
    batch_size=64,
    source=None,
    settings=None,
    versions=None,
    faithfulness=None,
):
    """Evaluates segmentation models; returns the report's data and
    gallery (see the module).

    Args:
        models: `ReportModel` objects, attention models then the baseline.
        test: A data source with masks (the targets).
        cam_layer: The baseline's Seg-Grad-CAM layer.
        cam_class: ``"predicted"`` (the predicted mask of the largest
            predicted class) or ``"true"`` (the true mask) as the region.
        num_examples, seed, batch_size: As `build_report`.
        source, settings, versions: For the record.
        faithfulness: ``None`` (off) or a `FaithfulnessSettings`: its
            ``intervention_images`` sample the gate interventions.

    Returns:
        ``(description, gallery, created, records, explorer)``: a
        `SegmentationDescription`, and the explorer's payload
        (`explain_attn.report.segmentation_explorer`).
    """
    _check_models(models, cam_class)
    encoding = target_encoding(models[-1].model, test)
    count = len(test.labels)
    rng = np.random.default_rng(seed)
    indices = sorted(rng.choice(count, min(num_examples, count), replace=False))
    state = evaluate_segmentation(
        models,
        test,
        encoding,
        cam_layer=cam_layer,
        region=cam_class,
        batch_size=batch_size,
        example_indices=indices,
    )
    training, records = training_records(models)
    description = SegmentationDescription(
        **_numbers(models, state, encoding, seed),
        dataset=_dataset(test, encoding, source),
        settings={
            "seed": seed,
            "cam_layer": cam_layer,
            "region": cam_class,
            "batch_size": batch_size,
            **(settings or {}),
        },
        versions=versions or {},
        faithfulness=_faithfulness(
            models,
            test,
            encoding,
            faithfulness,
            RunOptions(batch_size=batch_size, seed=seed),
        ),
        training_record=training,
        per_image=segmentation_per_image(state),
    )
    explorer = segmentation_explorer(description.to_json(), state)
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return description, state.examples, created, records, explorer
