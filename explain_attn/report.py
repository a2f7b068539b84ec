"""The report: does attention help, where does it look, and is it the object?

`build_report` gathers every number (models, accuracies, per-image metrics
of every explanation, agreement with the baseline's Grad-CAM, the gallery's
images); `render_html` turns it into one self-contained HTML file and
`write_json` writes the numbers. The ``explain-attn report`` command only
parses its options and calls these.

Images are processed in chunks, so memory stays flat in the number of test
images: only per-image numbers are kept for all of them, and maps at full
resolution only for the few gallery images, recomputed at the end.
"""

import dataclasses
import datetime
import json
import math
import platform
from pathlib import Path

import numpy as np

from explain_attn import __version__

__all__ = ["DEMO_ARCHITECTURES", "Report", "build_report", "write_json"]

DEMO_ARCHITECTURES = {
    "baseline": "small_convnet",
    "attention": "small_attention",
}
"""What the demo trains: a plain ConvNet and the same network with spatial
attention after blocks 2 and 3. The baseline is exactly the attention
network with its attention layers removed, so it is also the
capacity-matched ablation."""

CHUNK_SIZE = 1024
"""Test images per chunk of the streamed evaluation."""

SUBSETS = ("all", "correct", "wrong")

BOOTSTRAP_DRAWS = 20_000_000
"""Cap on resamples x images of one bootstrap interval (see
`bootstrap_resamples`)."""


def bootstrap_resamples(count):
    """Bootstrap resamples for intervals over ``count`` images.

    A percentile bootstrap costs resamples x images, while its Monte Carlo
    error depends on the number of resamples only. We use 10,000 resamples
    up to 2,000 images, then ``BOOTSTRAP_DRAWS // count`` (2,000 at 10,000
    images), never fewer than 1,000; the report states the number.
    """
    return int(min(10_000, max(1_000, BOOTSTRAP_DRAWS // max(count, 1))))


@dataclasses.dataclass
class Report:
    """What `build_report` found.

    Attributes:
        data: Every number of the report, JSON-ready (see `write_json`).
        gallery: The gallery examples: dicts with ``index``, ``image``
            ``(H, W, 3)``, ``mask`` ``(H, W)`` or ``None``, ``overlays``
            (explanation id -> ``(H, W)`` map at input resolution),
            ``reasons`` and per-model ``predictions``.
        created: When the report was built (UTC, ISO 8601); shown in the
            HTML only, so that ``report.json`` is identical between runs.
    """

    data: dict
    gallery: list
    created: str


@dataclasses.dataclass
class _Model:
    key: str
    role: str
    name: str
    model: object
    file: str | None
    architecture: str | None
    training: dict | None


@dataclasses.dataclass
class _Explanation:
    id: str
    label: str
    model_key: str
    method: str  # "attention" or "grad_cam"
    layer: str


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}"
        )


def build_report(
    data="sample",
    *,
    attention_models=(),
    baseline_model=None,
    layers=None,
    epochs=None,
    num_examples=8,
    seed=0,
    batch_size=128,
    image_size=None,
    cache_dir=None,
    safe_mode=True,
    verbose=1,
    command_line=None,
    log=print,
    faithfulness=True,
    spurious_correlation=None,
):
    """Evaluates attention models against a baseline and gathers the report.

    Without models, trains the demo pair `DEMO_ARCHITECTURES` on the
    training split of ``data`` (or loads them from the cache, see
    `explain_attn.cache`). With models, trains nothing.

    Args:
        data: ``"sample"``, ``"cifar10"``, an image folder or an ``.npz``
            file (see `explain_attn.data.load_dataset`). With given models
            its test split (a folder or file without splits: all of it) is
            evaluated; for the demo, `explain_attn.data.train_test_datasets`
            gives the training and test splits (a held-out 20 % where the
            data has no splits).
        attention_models: Paths of ``.keras`` attention models.
        baseline_model: Path of the ``.keras`` baseline model, whose
            Grad-CAM the attention maps are compared with.
        layers: Attention layer names, paths or patterns to report;
            ``None`` for every attention layer.
        epochs: Training epochs of the demo models (default: the demo's).
        num_examples: Images in the gallery.
        seed: Seed of training, bootstrap intervals and the gallery.
        batch_size: Images per forward pass.
        image_size: Resize the images to ``image_size`` x ``image_size``.
        cache_dir: Folder of the trained-model cache.
        safe_mode: Keras safe mode when loading models.
        verbose: 0 for silence, 1 for progress bars.
        command_line: The command line to record in the report.
        log: Where progress messages go (a ``print``-like function).
        faithfulness: Add the Faithfulness section (attention
            interventions, randomisation checks, deletion and insertion
            curves; see `explain_attn.faithfulness`) as
            ``data["faithfulness"]``. On the demo models (cached) it adds
            about 12 s to a 19 s report on 2 CPU cores; ``False`` skips it.
        spurious_correlation: For the demo on ``"sample"`` data only: the
            probability in [0, 1] that a training image's background tint
            gives its class away (`explain_attn.synthetic.generate`); the
            test split stays clean. ``None`` (the default) is the sample
            data as committed.

    Returns:
        A `Report`.

    Raises:
        ValueError: For bad options, unreadable data or models, unknown
            layers, models without attention layers, a baseline without a
            4-D layer, or models whose input does not match the images.
    """
    from explain_attn import data as data_module

    _check_positive("num_examples", num_examples)
    _check_positive("batch_size", batch_size)
    if epochs is not None:
        _check_positive("epochs", epochs)
    attention_models = list(attention_models or ())
    given = bool(attention_models) or baseline_model is not None
    if given and (not attention_models or baseline_model is None):
        raise ValueError(
            "Give both --attention-model and --baseline-model, or neither "
            "(then the demo models are trained on the data's training split)."
        )
    say = log if verbose else _silent
    if given and spurious_correlation is not None:
        raise ValueError(
            "--spurious-correlation changes the demo's training data; with "
            "given models nothing is trained. Leave it out, or leave out "
            "the models."
        )

    if given:
        test = data_module.load_dataset(
            data, split="test", image_size=image_size
        )
        train = None
    elif data == "sample":
        # Generated on demand: a warm run (cached models) never needs it.
        test = data_module.load_dataset(
            data, split="test", image_size=image_size
        )
        train = _sample_training_split(image_size, spurious_correlation)
    else:
        train, test = data_module.train_test_datasets(
            data,
            image_size=image_size,
            seed=seed,
            spurious_correlation=spurious_correlation,
        )
    say(
        f"Data: {test.name}, {len(test.labels)} test images of "
        f"{test.images.shape[1:]}, {len(test.class_names)} classes"
        + ("" if test.masks is not None else " (no masks)")
    )
    if given:
        models = _load_models(attention_models, baseline_model, safe_mode, say)
    else:
        models = _train_demo(train, test, epochs, seed, cache_dir, verbose, say)

    explanations = _explanations(models, layers)
    evaluation = _evaluate(models, explanations, test, batch_size, verbose)
    data_section = _summaries(models, explanations, evaluation, test, seed)
    gallery = _gallery(
        models, explanations, evaluation, test, num_examples, seed, batch_size
    )
    data_section["dataset"] = {
        "name": test.name,
        "source": str(data),
        "split": "test",
        "num_images": int(len(test.labels)),
        "image_shape": list(test.images.shape[1:]),
        "class_names": list(test.class_names),
        "has_masks": test.masks is not None,
        "fingerprint": test.fingerprint(),
    }
    data_section["settings"] = {
        "seed": seed,
        "epochs": epochs,
        "num_examples": num_examples,
        "layers": list(layers) if layers else None,
        "batch_size": batch_size,
        "command_line": command_line,
        "spurious_correlation": spurious_correlation,
    }
    data_section["versions"] = _versions()
    if faithfulness:
        from explain_attn.faithfulness import faithfulness_section

        data_section["faithfulness"] = faithfulness_section(
            models,
            explanations,
            test,
            seed=seed,
            batch_size=batch_size,
            verbose=verbose,
            log=say,
        )
    data_section["gallery"] = [
        {
            "index": example["index"],
            "label": int(test.labels[example["index"]]),
            "predictions": example["predictions"],
            "reasons": example["reasons"],
        }
        for example in gallery
    ]
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    return Report(data=data_section, gallery=gallery, created=created)


def _silent(*args, **kwargs):
    return None


def _load_models(attention_paths, baseline_path, safe_mode, say):
    from explain_attn.saving import load_model

    models = []
    for index, path in enumerate(attention_paths):
        model = load_model(path, safe_mode=safe_mode)
        models.append(
            _Model(
                key=f"attention_{index}"
                if len(attention_paths) > 1
                else "attention",
                role="attention",
                name=Path(path).name,
                model=model,
                file=str(path),
                architecture=None,
                training=None,
            )
        )
        say(f"Attention model: {path} (loaded, safe_mode={safe_mode})")
    models.append(
        _Model(
            key="baseline",
            role="baseline",
            name=Path(baseline_path).name,
            model=load_model(baseline_path, safe_mode=safe_mode),
            file=str(baseline_path),
            architecture=None,
            training=None,
        )
    )
    say(f"Baseline model: {baseline_path} (loaded, safe_mode={safe_mode})")
    return models


@dataclasses.dataclass(frozen=True)
class TrainingSplit:
    """A training split that is only built when a model must be trained.

    Attributes:
        load: Returns the `explain_attn.data.Dataset`.
        key: Identifies the data for the model cache, in place of
            ``Dataset.fingerprint()``.
        count: Number of images.
    """

    load: object
    key: str
    count: int


def _sample_training_split(image_size, spurious_correlation):
    """The sample data's generated training split, keyed by its recipe.

    The key holds every generator setting and a hash of the generator's
    source, so a change to the generator retrains cached models.
    """
    import hashlib
    import inspect

    from explain_attn import data as data_module
    from explain_attn import synthetic

    recipe = {
        "source": "sample",
        "count": synthetic.DEMO_TRAIN_SIZE,
        "seed": synthetic.SAMPLE_SEED,
        "clutter": synthetic.DEFAULT_CLUTTER,
        "spurious_correlation": spurious_correlation or 0.0,
        "image_size": image_size,
        "generator": hashlib.sha256(
            inspect.getsource(synthetic).encode()
        ).hexdigest(),
    }
    return TrainingSplit(
        load=lambda: data_module.load_dataset(
            "sample",
            split="train",
            image_size=image_size,
            spurious_correlation=spurious_correlation,
        ),
        key=json.dumps(recipe, sort_keys=True),
        count=synthetic.DEMO_TRAIN_SIZE,
    )


def _train_demo(train, test, epochs, seed, cache_dir, verbose, say):
    from explain_attn import cache, training

    epochs = epochs or training.DEMO_EPOCHS
    models = []
    for role in ("baseline", "attention"):
        architecture = DEMO_ARCHITECTURES[role]
        model, info = cache.train_or_load(
            architecture,
            train,
            validation_data=test,
            epochs=epochs,
            seed=seed,
            batch_size=training.DEMO_BATCH_SIZE,
            learning_rate=training.DEMO_LEARNING_RATE,
            cache_dir=cache_dir,
            verbose=verbose,
        )
        verb = "loaded from cache" if info["source"] == "cache" else "trained"
        say(
            f"{role.capitalize()} model {architecture}: {verb} "
            f"({epochs} epochs, {_count(train)} training images, "
            f"{info['seconds_per_epoch']:.1f} s per epoch; key {info['key']})"
        )
        models.append(
            _Model(
                key=role,
                role=role,
                name=architecture,
                model=model,
                file=None,
                architecture=architecture,
                training={
                    "source": info["source"],
                    "epochs": epochs,
                    "training_images": _count(train),
                    "seconds_per_epoch": info["seconds_per_epoch"],
                    "history": info["history"],
                },
            )
        )
    return models[::-1]  # attention first, baseline last


def _count(train):
    return train.count if isinstance(train, TrainingSplit) else len(train)


def _explanations(models, layers):
    from explain_attn.cam import default_cam_layer
    from explain_attn.maps import resolve_layers

    explanations = []
    for entry in models:
        if entry.role != "attention":
            continue
        try:
            paths = resolve_layers(entry.model, layers)
        except ValueError as error:
            raise ValueError(
                f"Attention model {entry.name!r}: {error}"
            ) from None
        for path in paths:
            explanations.append(
                _Explanation(
                    id=f"{entry.key}:{path}",
                    label=f"{entry.name} · {path}",
                    model_key=entry.key,
                    method="attention",
                    layer=path,
                )
            )
    for entry in models:
        try:
            layer = default_cam_layer(entry.model)
        except ValueError as error:
            raise ValueError(
                f"{entry.role.capitalize()} model: {error}"
            ) from None
        explanations.append(
            _Explanation(
                id=f"{entry.key}:grad_cam",
                label=f"{entry.name} · Grad-CAM ({layer})",
                model_key=entry.key,
                method="grad_cam",
                layer=layer,
            )
        )
    return explanations


def _maps_for(models, explanations, images, batch_size, resize_to=None):
    """Every explanation's maps for ``images``: one pass per model."""
    from explain_attn.cam import grad_cam
    from explain_attn.maps import attention_maps

    by_key = {entry.key: entry for entry in models}
    result = {}
    for entry in models:
        mine = [e for e in explanations if e.model_key == entry.key]
        attention = [e.layer for e in mine if e.method == "attention"]
        if attention:
            maps = attention_maps(
                entry.model,
                images,
                layers=attention,
                batch_size=batch_size,
                resize_to=resize_to,
            )
            for explanation in mine:
                if explanation.method == "attention":
                    result[explanation.id] = maps[explanation.layer]
        for explanation in mine:
            if explanation.method == "grad_cam":
                result[explanation.id] = grad_cam(
                    by_key[explanation.model_key].model,
                    images,
                    layer=explanation.layer,
                    batch_size=batch_size,
                    resize_to=resize_to,
                )
    return result


def _evaluate(models, explanations, test, batch_size, verbose):
    """Streams the test set: predictions and every per-image number."""
    import keras

    from explain_attn import metrics
    from explain_attn.maps import check_images, predict_classes

    for entry in models:
        try:
            check_images(entry.model, test.images[:1])
        except ValueError as error:
            raise ValueError(
                f"{entry.role.capitalize()} model {entry.name!r}: {error}"
            ) from None
    count = len(test.labels)
    baseline_cam = "baseline:grad_cam"
    predictions = {entry.key: [] for entry in models}
    values = {e.id: {} for e in explanations}
    agreement = {e.id: {} for e in explanations if e.method == "attention"}
    progress = (
        keras.utils.Progbar(count, unit_name="image") if verbose else None
    )
    for start in range(0, count, CHUNK_SIZE):
        stop = min(start + CHUNK_SIZE, count)
        images = test.images[start:stop]
        masks = None if test.masks is None else test.masks[start:stop]
        for entry in models:
            predictions[entry.key].append(
                predict_classes(entry.model, images, batch_size=batch_size)
            )
        maps = _maps_for(models, explanations, images, batch_size)
        for explanation in explanations:
            own = maps[explanation.id]
            row = values[explanation.id]
            for name, function in metrics.CONCENTRATION_METRICS.items():
                row.setdefault(name, []).append(function(own))
            if masks is not None:
                for name, function in metrics.FOREGROUND_METRICS.items():
                    row.setdefault(name, []).append(function(own, masks))
            if explanation.id in agreement:
                for name in ("spearman", "top_fraction_overlap"):
                    function = metrics.AGREEMENT_METRICS[name]
                    agreement[explanation.id].setdefault(name, []).append(
                        function(own, maps[baseline_cam])
                    )
        if progress is not None:
            progress.update(stop)
    join = np.concatenate
    return {
        "predictions": {k: join(v) for k, v in predictions.items()},
        "values": {
            i: {name: join(chunks) for name, chunks in row.items()}
            for i, row in values.items()
        },
        "agreement": {
            i: {name: join(chunks) for name, chunks in row.items()}
            for i, row in agreement.items()
        },
    }


def _summaries(models, explanations, evaluation, test, seed):
    from explain_attn import metrics

    labels = np.asarray(test.labels)
    predictions = evaluation["predictions"]
    correct = {key: predictions[key] == labels for key in predictions}
    model_rows = []
    for entry in models:
        model_rows.append(
            {
                "key": entry.key,
                "role": entry.role,
                "name": entry.name,
                "file": entry.file,
                "architecture": entry.architecture,
                "parameters": int(entry.model.count_params()),
                "accuracy": metrics.accuracy_interval(correct[entry.key]),
                "training": entry.training,
            }
        )
    baseline = next(m for m in model_rows if m["role"] == "baseline")
    bootstrap = {
        "seed": seed,
        "num_resamples": bootstrap_resamples(len(labels)),
    }
    comparisons = []
    for row in model_rows:
        if row["role"] != "attention":
            continue
        difference = metrics.paired_difference(
            correct[row["key"]].astype(float),
            correct["baseline"].astype(float),
            **bootstrap,
        )
        comparisons.append(
            {
                "attention": row["key"],
                "reference": "baseline",
                **difference,
                "sentence": _comparison_sentence(row, baseline, difference),
            }
        )

    rows = []
    baseline_mass = evaluation["values"]["baseline:grad_cam"].get(
        "mass_in_mask"
    )
    for explanation in explanations:
        own = evaluation["values"][explanation.id]
        subsets = {
            "all": np.ones(len(labels), bool),
            "correct": correct[explanation.model_key],
            "wrong": ~correct[explanation.model_key],
        }
        summary = {
            subset: {
                name: metrics.summarize(values[chosen], **bootstrap)
                for name, values in own.items()
            }
            for subset, chosen in subsets.items()
        }
        row = {
            "id": explanation.id,
            "label": explanation.label,
            "model": explanation.model_key,
            "method": explanation.method,
            "layer": explanation.layer,
            "summary": summary,
        }
        if explanation.method == "attention":
            row["agreement_with_baseline_grad_cam"] = {
                name: metrics.summarize(values, **bootstrap)
                for name, values in evaluation["agreement"][
                    explanation.id
                ].items()
            }
            if baseline_mass is not None:
                row["mass_in_mask_vs_baseline_grad_cam"] = (
                    metrics.paired_difference(
                        own["mass_in_mask"], baseline_mass, **bootstrap
                    )
                )
        rows.append(row)

    notes = []
    if test.masks is None:
        notes.append(
            "This dataset has no foreground masks, so the foreground metrics "
            "(mass in mask, pointing game, rank accuracy, ROC AUC, top-20% "
            "IoU) are left out."
        )
    return {
        "format": "explain-attn report 1",
        "bootstrap_resamples": bootstrap["num_resamples"],
        "models": model_rows,
        "comparisons": comparisons,
        "explanations": rows,
        "notes": notes,
        "per_image": {
            "labels": labels.tolist(),
            "predictions": {
                key: value.tolist() for key, value in predictions.items()
            },
            "metrics": {
                explanation_id: {
                    name: value.tolist() for name, value in row.items()
                }
                for explanation_id, row in evaluation["values"].items()
            },
            "agreement_with_baseline_grad_cam": {
                explanation_id: {
                    name: value.tolist() for name, value in row.items()
                }
                for explanation_id, row in evaluation["agreement"].items()
            },
        },
    }


def _comparison_sentence(attention, baseline, difference):
    points = 100 * difference["mean_difference"]
    low, high = 100 * difference["ci_low"], 100 * difference["ci_high"]
    extra = attention["parameters"] - baseline["parameters"]
    direction = "more" if points >= 0 else "less"
    sentence = (
        f"{attention['name']} is {abs(points):.1f} percentage points "
        f"{direction} accurate than {baseline['name']} on the same "
        f"{difference['n']} test images (95% CI {low:+.1f} to {high:+.1f}); "
    )
    if math.isnan(low) or low <= 0 <= high:
        sentence += (
            "the interval includes zero, so this test set does not show a "
            "real difference. "
        )
    else:
        sentence += "the interval excludes zero, so the difference is real. "
    if attention["architecture"] == DEMO_ARCHITECTURES["attention"] and (
        baseline["architecture"] == DEMO_ARCHITECTURES["baseline"]
    ):
        sentence += (
            f"The two networks are identical except for the attention "
            f"layers, which add {extra:,} parameters: the baseline is the "
            "capacity-matched ablation."
        )
    else:
        sentence += (
            f"The networks differ in architecture: {attention['parameters']:,}"
            f" vs {baseline['parameters']:,} parameters, so capacity as well "
            "as attention may explain a difference."
        )
    return sentence


def _gallery(
    models, explanations, evaluation, test, num_examples, seed, batch_size
):
    """Picks informative test images and computes their full-size maps."""
    count = len(test.labels)
    labels = np.asarray(test.labels)
    attention = [e for e in explanations if e.method == "attention"]
    first = attention[0] if attention else explanations[0]
    first_model = first.model_key
    wrong = np.flatnonzero(evaluation["predictions"][first_model] != labels)
    values = evaluation["values"][first.id]
    candidates = []
    if "mass_in_mask" in values:
        mass = np.nan_to_num(values["mass_in_mask"], nan=-1.0)
        order = np.argsort(-mass, kind="stable")
        candidates.append((f"highest mass in mask ({first.label})", order))
        candidates.append((f"lowest mass in mask ({first.label})", order[::-1]))
    if first.id in evaluation["agreement"]:
        spearman = np.nan_to_num(
            evaluation["agreement"][first.id]["spearman"], nan=2.0
        )
        candidates.append(
            (
                f"largest disagreement of {first.label} with the baseline's "
                "Grad-CAM",
                np.argsort(spearman, kind="stable"),
            )
        )
    first_name = next(m.name for m in models if m.key == first_model)
    candidates.append((f"misclassified by {first_name}", wrong))
    rng = np.random.default_rng(seed)
    candidates.append(("random", rng.permutation(count)))

    chosen = {}
    pointers = [0] * len(candidates)
    target = min(num_examples, count)
    while len(chosen) < target:
        progressed = False
        for position, (reason, order) in enumerate(candidates):
            while pointers[position] < len(order):
                index = int(order[pointers[position]])
                pointers[position] += 1
                if index not in chosen:
                    chosen[index] = reason
                    progressed = True
                    break
            if len(chosen) >= target:
                break
        if not progressed:
            break
    indices = np.array(sorted(chosen), dtype=int)
    if len(indices) == 0:
        return []
    images = test.images[indices]
    overlays = _maps_for(
        models, explanations, images, batch_size, resize_to="input"
    )
    gallery = []
    for position, index in enumerate(indices):
        gallery.append(
            {
                "index": int(index),
                "image": images[position],
                "mask": None if test.masks is None else test.masks[index],
                "overlays": {
                    e.id: overlays[e.id][position] for e in explanations
                },
                "reasons": [chosen[int(index)]],
                "predictions": {
                    key: int(value[index])
                    for key, value in evaluation["predictions"].items()
                },
            }
        )
    return gallery


def _versions():
    import keras
    import tensorflow as tf

    return {
        "explain_attn": __version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def _json_ready(value):
    """NaN and infinities become ``null``: strict JSON has no NaN."""
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def write_json(report, path):
    """Writes ``report.data`` to ``path`` as strict JSON, atomically.

    NaN (an undefined value, e.g. a metric on an empty mask) is written as
    ``null``. The file holds no date, and its only timings are the training
    times stored with cached models, so the same command with the same seed
    writes the same file when run twice.
    """
    from explain_attn.saving import atomic_path

    text = json.dumps(_json_ready(report.data), indent=1, allow_nan=False)
    with atomic_path(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
