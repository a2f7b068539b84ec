"""The report: does attention help, where does it look, and is it the object?

`build_report` takes trained models and a test set and runs the stages:
`explain_attn.report.evaluate` (stream the test set, keep per-image
numbers), `explain_attn.report.summaries` (tables with intervals),
`explain_attn.report.gallery` (informative images with every map) and
`explain_attn.report.faithfulness` (the Faithfulness section).
`report_from_sources` first loads the models and data, or trains the demo
pair (`explain_attn.report.demo`). `explain_attn.report.render` turns a
`Report` into HTML, `write_json` into numbers.
"""

import dataclasses
import datetime
import json
import math
import platform

import numpy as np

from explain_attn import __version__
from explain_attn.data import load_dataset
from explain_attn.explanations.explanation import explanations_for
from explain_attn.explanations.methods import get_method
from explain_attn.models.saving import atomic_path
from explain_attn.report.demo import demo_data, demo_models
from explain_attn.report.evaluate import evaluate
from explain_attn.report.faithfulness import (
    faithfulness_section,
    faithfulness_settings,
)
from explain_attn.report.gallery import gallery
from explain_attn.report.models import load_report_models
from explain_attn.report.summaries import summaries

__all__ = [
    "Report",
    "build_report",
    "report_explanations",
    "report_from_sources",
    "write_json",
]


@dataclasses.dataclass
class Report:
    """What `build_report` found.

    Attributes:
        data: Every number of the report, JSON-ready (see `write_json`).
        gallery: The gallery examples: dicts with ``index``, ``image``
            ``(H, W, C)``, ``mask`` ``(H, W)`` or ``None``, ``overlays``
            (`Explanation` -> ``(H, W)`` map at input resolution),
            ``reasons`` and per-model ``predictions``.
        created: When the report was built (UTC, ISO 8601); shown in the
            HTML only, so that ``report.json`` is identical between runs.
    """

    data: dict
    gallery: list
    created: str


def _check_positive(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{name} must be a positive integer. Received: {name}={value!r}"
        )


def _silent(*args, **kwargs):
    return None


def report_explanations(models, *, layers=None, methods=("grad_cam",)):
    """The report's explanations and the reference they are compared with.

    Every attention layer (or ``layers``) of each attention model, then each
    of ``methods`` for every model at its last 4-D layer. The reference is
    the baseline's explanation by the first method.

    Returns:
        ``(explanations, reference)``.
    """
    if not methods:
        raise ValueError("Give at least one CAM method (e.g. grad_cam).")
    explanations = []
    for entry in models:
        if entry.role != "attention":
            continue
        try:
            explanations += explanations_for(
                entry.model, "attention", layers, key=entry.key, name=entry.name
            )
        except ValueError as error:
            raise ValueError(
                f"Attention model {entry.name!r}: {error}"
            ) from None
    for entry in models:
        for method in methods:
            if not get_method(method).uses_class:
                raise ValueError(
                    f"--method {method!r} is not a CAM method. Choose a "
                    "class-activation method such as grad_cam."
                )
            try:
                explanations += explanations_for(
                    entry.model, method, key=entry.key, name=entry.name
                )
            except ValueError as error:
                raise ValueError(
                    f"{entry.role.capitalize()} model: {error}"
                ) from None
    reference = next(
        e
        for e in explanations
        if e.model_key == models[-1].key and e.method == methods[0]
    )
    return explanations, reference


def _dataset_section(test, source):
    return {
        "name": test.name,
        "source": str(source),
        "split": "test",
        "num_images": int(len(test.labels)),
        "image_shape": list(test.images.shape[1:]),
        "class_names": list(test.class_names),
        "has_masks": test.masks is not None,
        "fingerprint": test.fingerprint(),
    }


def _gallery_section(examples, test):
    return [
        {
            "index": example["index"],
            "label": int(test.labels[example["index"]]),
            "predictions": example["predictions"],
            "reasons": example["reasons"],
        }
        for example in examples
    ]


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


def build_report(
    models,
    test,
    *,
    layers=None,
    methods=("grad_cam",),
    num_examples=8,
    seed=0,
    batch_size=128,
    faithfulness=True,
    verbose=1,
    log=print,
    source=None,
    settings=None,
):
    """Evaluates attention models against a baseline on a test set.

    Args:
        models: `explain_attn.report.models.ReportModel` objects: one or
            more attention models, then the baseline (last).
        test: The test `explain_attn.data.Dataset`.
        layers: Attention layer names, paths or patterns to report;
            ``None`` for every attention layer.
        methods: CAM methods (registered names) computed for every model;
            the baseline's first is the reference the attention maps are
            compared with.
        num_examples: Images in the gallery.
        seed: Seed of bootstrap intervals, the gallery and the checks.
        batch_size: Images per forward pass.
        faithfulness: ``"full"`` (or ``True``), ``"fast"``, ``"off"`` (or
            ``False``) or settings (`explain_attn.report.faithfulness`):
            the Faithfulness section as ``data["faithfulness"]``.
        verbose: 0 for silence, 1 for progress.
        log: Where progress messages go (a ``print``-like function).
        source: What the data was loaded from, for the record.
        settings: More settings to record (e.g. the command line).

    Returns:
        A `Report`.

    Raises:
        ValueError: For bad options, unknown layers or methods, models
            without attention layers, a baseline without a 4-D layer, or
            models whose input does not match the images.
    """
    _check_positive("num_examples", num_examples)
    _check_positive("batch_size", batch_size)
    faithfulness = faithfulness_settings(faithfulness)
    say = log if verbose else _silent
    explanations, reference = report_explanations(
        models, layers=layers, methods=methods
    )
    evaluation = evaluate(
        models, explanations, reference, test, batch_size=batch_size,
        verbose=verbose,
    )  # fmt: skip
    data = summaries(models, explanations, reference, evaluation, test, seed)
    examples = gallery(
        explanations, reference, evaluation, test,
        num_examples=num_examples, seed=seed, batch_size=batch_size,
    )  # fmt: skip
    data["dataset"] = _dataset_section(test, source)
    data["settings"] = {
        "seed": seed,
        "num_examples": num_examples,
        "layers": list(layers) if layers else None,
        "methods": list(methods),
        "batch_size": batch_size,
        **(settings or {}),
    }
    data["versions"] = _versions()
    if faithfulness is not None:
        data["faithfulness"] = faithfulness_section(
            models, explanations, test, settings=faithfulness, seed=seed,
            batch_size=batch_size, say=say,
        )  # fmt: skip
    data["gallery"] = _gallery_section(examples, test)
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return Report(data=data, gallery=examples, created=created)


def _check_sources(attention_models, baseline_model, spurious_correlation):
    given = bool(attention_models) or baseline_model is not None
    if given and (not attention_models or baseline_model is None):
        raise ValueError(
            "Give both --attention-model and --baseline-model, or neither "
            "(then the demo models are trained on the data's training split)."
        )
    if given and spurious_correlation is not None:
        raise ValueError(
            "--spurious-correlation changes the demo's training data; with "
            "given models nothing is trained. Leave it out, or leave out "
            "the models."
        )
    return given


def report_from_sources(
    data="sample",
    *,
    attention_models=(),
    baseline_model=None,
    image_size=None,
    epochs=None,
    cache_dir=None,
    safe_mode=True,
    spurious_correlation=None,
    command_line=None,
    **options,
):
    """Loads models and data (or trains the demo pair), then `build_report`.

    Args:
        data: ``"sample"``, ``"cifar10"``, an image folder or an ``.npz``
            file (see `explain_attn.data.load_dataset`). With given models
            its test split (a folder or file without splits: all of it) is
            evaluated; for the demo, the training split trains the models
            and the test split is evaluated.
        attention_models: Paths of ``.keras`` attention models.
        baseline_model: Path of the ``.keras`` baseline model.
        image_size: Resize the images to ``image_size`` x ``image_size``.
        epochs: Training epochs of the demo models (default: the demo's).
        cache_dir: Folder of the trained-model cache.
        safe_mode: Keras safe mode when loading models.
        spurious_correlation: For the demo on ``"sample"`` data only: the
            probability that a training image's background tint gives its
            class away (`explain_attn.data.synthetic.generate`).
        command_line: The command line to record in the report.
        **options: Passed to `build_report` (``layers``, ``methods``,
            ``num_examples``, ``seed``, ``batch_size``, ``faithfulness``,
            ``verbose``, ``log``).

    Returns:
        A `Report`.
    """
    if epochs is not None:
        _check_positive("epochs", epochs)
    for name in ("num_examples", "batch_size"):
        if name in options:
            _check_positive(name, options[name])
    attention_models = list(attention_models or ())
    given = _check_sources(
        attention_models, baseline_model, spurious_correlation
    )
    verbose = options.get("verbose", 1)
    say = options.get("log", print) if verbose else _silent
    if given:
        test = load_dataset(data, split="test", image_size=image_size)
    else:
        train, test = demo_data(
            data, image_size=image_size, seed=options.get("seed", 0),
            spurious_correlation=spurious_correlation,
        )  # fmt: skip
    say(
        f"Data: {test.name}, {len(test.labels)} test images of "
        f"{test.images.shape[1:]}, {len(test.class_names)} classes"
        + ("" if test.masks is not None else " (no masks)")
    )
    if given:
        models = load_report_models(
            attention_models, baseline_model, safe_mode=safe_mode, say=say
        )
    else:
        models = demo_models(
            train, test, epochs=epochs, seed=options.get("seed", 0),
            cache_dir=cache_dir, verbose=verbose, say=say,
        )  # fmt: skip
    settings = {
        "epochs": epochs,
        "command_line": command_line,
        "spurious_correlation": spurious_correlation,
    }
    return build_report(models, test, source=data, settings=settings, **options)


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
    text = json.dumps(_json_ready(report.data), indent=1, allow_nan=False)
    with atomic_path(path) as temporary:
        temporary.write_text(text + "\n", encoding="utf-8")
