"""The report: does attention help, where does it look, and is it the object?

`build_report` takes trained models and a test set (in memory or
streamed), makes the `Run` every section reads, runs the one pass over
the test set in which every section observes what it needs
(`explain_attn.report.sections.contributors`, `explain_attn.report.
evaluate`), then computes the description section by section
(`explain_attn.report.sections.describe`: tables with intervals, the
gallery and the faithfulness checks on images read again, the reading
aids). Memory: per-image numbers, thumbnails and a few chunks, whatever
the number of images. `report_from_sources` first loads the models and
opens the data, or trains the demo pair (`explain_attn.report.demo`).
`explain_attn.report.render` turns a `Report` into HTML, `write_json` into
numbers.
"""

import dataclasses
import datetime
import json
import math

import numpy as np

from explain_attn.data import load_dataset, open_source, train_test_datasets
from explain_attn.devices import replica_count, strategy_scope
from explain_attn.explanations.explanation import explanations_for
from explain_attn.explanations.inputs import input_shape, model_channels
from explain_attn.explanations.methods import get_method
from explain_attn.models.lookup import (
    attention_layer_names,
    cam_candidates,
    channel_module_names,
    resolve_layers,
)
from explain_attn.models.saving import atomic_path
from explain_attn.models.task import SEGMENTATION
from explain_attn.options import check_positive_int
from explain_attn.report.cache import cache_directory
from explain_attn.report.demo import demo_data, demo_models
from explain_attn.report.drawing import Drawer
from explain_attn.report.evaluate import evaluate_parts
from explain_attn.report.faithfulness import faithfulness_settings
from explain_attn.report.models import load_report_models
from explain_attn.report.observed import (
    channel_paths,
    observed_from,
    report_chunk_size,
)
from explain_attn.report.run_record import dataset_name, library_versions
from explain_attn.report.section import Run
from explain_attn.report.sections import (
    ReportDescription,
    contributors,
    describe,
)
from explain_attn.report.segmentation import (
    SegmentationDescription,
    check_unsharded,
    segmentation_report,
)
from explain_attn.report.segmentation_sources import (
    report_task,
    segmentation_demo,
)
from explain_attn.report.shards import (
    ShardJob,
    evaluate_shard,
    numbers_options,
    run_fingerprint,
)
from explain_attn.report.summaries import report_bootstrap
from explain_attn.stages import stage

__all__ = [
    "Report",
    "dataset_name",
    "build_report",
    "open_run",
    "report_explanations",
    "report_from_sources",
    "write_json",
]


@dataclasses.dataclass
class Report:
    """What `build_report` found.

    Attributes:
        description: The typed description (`explain_attn.report.sections.
            ReportDescription`, or a `explain_attn.report.segmentation.
            SegmentationDescription`): one field per section, never changed.
        gallery: The gallery examples: dicts with ``index``, ``image``
            ``(H, W, C)``, ``mask`` ``(H, W)`` or ``None``, ``overlays``
            (`Explanation` -> ``(H, W)`` map at input resolution),
            ``reasons`` and per-model ``predictions``.
        created: When the report was built (UTC, ISO 8601); shown in the
            HTML only, so that ``report.json`` is identical between runs.
        explorer: The explorer's payload (`explain_attn.report.explorer`):
            every test image's numbers and thumbnails; HTML only.
    """

    description: ReportDescription | SegmentationDescription
    gallery: list
    created: str
    explorer: dict | None = None
    records: dict = dataclasses.field(default_factory=dict)
    """Model key -> `explain_attn.models.recorder.TrainingRecord`, for
    the models that carry one (the "Attention during training" figures)."""
    figures: dict = dataclasses.field(default_factory=dict)
    """Section name -> its figures (`explain_attn.report.drawing.Figures`:
    PNG ``data:`` URIs by name, drawn when first read or already drawn by
    a helper process); HTML only."""

    @property
    def data(self):
        """Every number of the report, JSON-ready (see `write_json`): the
        description's `to_json`, read only."""
        return self.description.to_json()

    def _repr_html_(self):
        """The report, inline in Jupyter (the same templates as the file)."""
        from explain_attn.report.render import report_frame

        return report_frame(self)


def _check_counts(**counts):
    """Checks the counts that are given (not ``None``)."""
    for name, value in counts.items():
        if value is not None:
            check_positive_int(name, value)


def _checked_options(num_examples, batch_size, faithfulness):
    """Checks the counts; returns the faithfulness settings."""
    check_positive_int("num_examples", num_examples)
    check_positive_int("batch_size", batch_size)
    return faithfulness_settings(faithfulness)


def _silent(*args, **kwargs):
    return None


def _attention_explanations(entry, layers):
    """The spatial attention explanations of one attention model; channel
    modules are left to the channel section."""
    channel = set(channel_module_names(entry.state))
    if layers is None:
        spatial = attention_layer_names(entry.state)
        if not spatial and channel:
            return []
        spatial = None if not spatial else spatial
    else:
        spatial = [
            p for p in resolve_layers(entry.state, layers) if p not in channel
        ]
        if not spatial:
            return []
    return explanations_for(
        entry.state, "attention", spatial, key=entry.key, name=entry.name
    )


def report_explanations(
    models,
    *,
    layers=None,
    methods=("grad_cam",),
    cam_layer=None,
    cam_class="predicted",
):
    """The report's explanations and the reference they are compared with.

    Every spatial attention module (or ``layers``) of each attention model,
    then each of ``methods`` for every model at its last Grad-CAM
    candidate (the baseline at ``cam_layer`` when given), explaining
    ``cam_class`` (``"predicted"``, ``"true"`` or a class index). The
    reference is the baseline's explanation by the first method. Channel
    modules (SE gates) are not maps: `channel_section` reports them.

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
            explanations += _attention_explanations(entry, layers)
        except ValueError as error:
            raise ValueError(
                f"Attention model {entry.name!r}: {error}"
            ) from None
    for entry in models:
        where = cam_layer if entry.role == "baseline" else None
        if entry.role == "attention" and not cam_candidates(entry.state):
            continue  # A pure transformer: its attention maps alone.
        for method in methods:
            if not get_method(method).uses_class:
                raise ValueError(
                    f"--method {method!r} is not a CAM method. Choose a "
                    "class-activation method such as grad_cam."
                )
            try:
                _check_target(entry.model, cam_class)
                explanations += explanations_for(
                    entry.state,
                    method,
                    where,
                    key=entry.key,
                    name=entry.name,
                    target=cam_class,
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


def _check_target(model, cam_class):
    if isinstance(cam_class, int) and not isinstance(cam_class, bool):
        num_classes = int(model.outputs[0].shape[-1])
        if not 0 <= cam_class < num_classes:
            raise ValueError(
                f"--cam-class {cam_class} is not one of its {num_classes} "
                f"classes (0 to {num_classes - 1})."
            )


SETTINGS = ("seed", "num_examples", "cam_layer", "cam_class", "batch_size")
"""`build_report`'s arguments recorded as they are in ``settings``."""


def build_report(
    models,
    test,
    *,
    layers=None,
    methods=("grad_cam",),
    cam_layer=None,
    cam_class="predicted",
    num_examples=8,
    seed=0,
    batch_size=128,
    faithfulness=True,
    verbose=1,
    log=print,
    source=None,
    settings=None,
    strategy=None,
    shard=None,
    chunk_size=None,
    drawer=None,
):
    """Evaluates attention models against a baseline on a test set.

    Args:
        models: `explain_attn.report.models.ReportModel` objects: one or
            more attention models, then the baseline (last).
        test: A `explain_attn.data.Dataset` or a streamed source (`open_
            source`): read once in chunks, then only the images shown or
            perturbed (`explain_attn.data.loaders.take_images`).
        layers: Attention layer names, paths or patterns to report;
            ``None`` for every attention layer.
        methods: CAM methods (registered names) computed for every model;
            the baseline's first is the reference the attention maps are
            compared with.
        cam_layer, cam_class: See `report_explanations`.
        num_examples: Images in the gallery.
        seed: Seed of bootstrap intervals, the gallery and the checks.
        batch_size: Images per forward pass.
        faithfulness: ``"full"`` (or ``True``), ``"fast"``, ``"off"`` (or
            ``False``) or settings (`explain_attn.report.faithfulness`).
        verbose, log: 0 for silence, 1 for progress; where it goes.
        source, settings: What the data was loaded from and more settings
            (e.g. the command line), for the record.
        strategy: ``None`` or a `tf.distribute` strategy sharing each pass.
        shard, chunk_size: ``None`` or merged parts (`explain_attn.report.
            shards.Merged`) in place of the pass; images per chunk of the
            pass (``None``: `explain_attn.report.evaluate.chunk_size_for`).
        drawer: Who draws the figures (`explain_attn.report.drawing.
            Drawer`): ``None`` to draw each in this process when the page
            is rendered; ``explain-attn report`` passes one whose helper
            process draws them while the report computes.

    Returns:
        A `Report`.

    Raises:
        ValueError: For bad options, unknown layers or methods, models
            without attention, a baseline without a 4-D layer, or models
            whose input does not match the images.
    """
    faithfulness = _checked_options(num_examples, batch_size, faithfulness)
    given = dict(locals())
    run = _run(models, test, given)
    observed = _observed(run, verbose, chunk_size)
    drawer = Drawer() if drawer is None else drawer
    results, attachments = describe(run, observed, drawer=drawer)
    created = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    return Report(
        description=ReportDescription(**results),
        gallery=attachments.get("gallery", []),
        created=created,
        explorer=attachments.get("explorer"),
        records=attachments.get("training_record", {}),
        figures=drawer.figures(),
    )


def _run(models, test, given):
    """The `Run` of `build_report`'s arguments ``given`` by name: the
    explanations, the options the sections read and the recorded
    settings."""
    chosen = ("layers", "methods", "cam_layer", "cam_class")
    explanations, reference = report_explanations(
        models, **{name: given[name] for name in chosen}
    )
    layers, strategy = given["layers"], given["strategy"]
    recorded = {k: v for k, v in given.items() if k in SETTINGS}
    recorded |= {
        "layers": list(layers) if layers else None,
        "methods": list(given["methods"]),
        "devices": replica_count(strategy),
        **(given["settings"] or {}),
    }
    options = {name: given[name] for name in RUN_OPTIONS}
    options |= {
        "say": given["log"] if given["verbose"] else _silent,
        "merged": given["shard"],
        "channel_layers": channel_paths(models, layers),
        "recorded": recorded,
        **_interval_draws(test, given["seed"], given["shard"]),
    }
    return Run(models, explanations, reference, test, options)


def _interval_draws(test, seed, merged):
    """``keyed``: the bootstrap's counts of every image for a single run;
    ``sums``: merged parts' interval sums in their place (no counts of all
    images are drawn for a merge)."""
    if merged is None:
        return {"keyed": report_bootstrap(len(test.labels), seed), "sums": None}
    return {"keyed": None, "sums": merged.sums}


RUN_OPTIONS = (
    "seed",
    "batch_size",
    "strategy",
    "num_examples",
    "faithfulness",
    "source",
)
"""`build_report`'s arguments that the sections read as they are
(`explain_attn.report.section.Run`)."""


def _observed(run, verbose, chunk_size):
    """The one pass over the test data, or the reduce of the merged parts
    once their fingerprint is checked against these models and data:
    every section's contributions (`observed_from`)."""
    observing = contributors(run)
    test, merged = run.test, run.merged
    if merged is not None:
        options = numbers_options(merged.metas[0]["run"])
        if run_fingerprint(run.models, test, options) != merged.fingerprint:
            raise ValueError(
                "The models or data the parts were made with have changed "
                "since (their fingerprint differs). Run the shards again."
            )
        return observed_from(observing, merged.part)
    chunk = report_chunk_size(test, run.batch_size, chunk_size)
    with stage(f"the evaluation of {len(test.labels):,} test images"):
        total = evaluate_parts(
            run.models,
            run.explanations,
            test.batches(chunk),
            contributors=observing,
            batch_size=run.batch_size,
            verbose=verbose,
            num_images=len(test.labels),
            strategy=run.strategy,
        )
    return observed_from(observing, total)


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
    attention_factory=None,
    baseline_factory=None,
    input_scale=None,
    **options,
):
    """Loads models and data (or trains the demo pair), then `build_report`.

    Given models get the images in the scale each takes (``input_scale``
    or what its layers imply: `explain_attn.report.models.in_unit_scale`),
    with their channels; a float ``.npz`` is read in ``input_scale``.

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
        attention_factory, baseline_factory: ``"module:function"``
            building the models given as ``.weights.h5`` files.
        **options: ``retrain`` (train the demo models anew, not from the
            cache or the copies the package ships), else passed to
            `build_report` (``layers``, ``methods``, ``num_examples``,
            ``seed``, ``batch_size``, ``faithfulness``, ``verbose``,
            ``log``, ``strategy``: models load in its scope, ``drawer``;
            ``task``: ``"classification"``, ``"segmentation"`` or ``None``
            for the models' own, `explain_attn.report.segmentation`).

    Returns:
        A `Report`; with ``shard=ShardJob(...)``, the path of the shard's
        part (`shard_part`).
    """
    sources = {k: v for k, v in locals().items() if k in SOURCE_ARGUMENTS}
    sources["attention_models"] = list(attention_models or ())
    settings = {
        "epochs": epochs,
        "command_line": command_line,
        "spurious_correlation": spurious_correlation,
    }
    task = options.pop("task", None)
    drawer = options.pop("drawer", None)
    given = None
    if not (
        task == SEGMENTATION and not attention_models and not baseline_model
    ):
        given = open_run(sources, options)
    if report_task(given[0] if given else (), task) == SEGMENTATION:
        check_unsharded(options)
        return _segmentation_report(given, sources, settings, options)
    models, test = given
    _check_foreground_masks(test)
    if isinstance(options.get("shard"), ShardJob):
        job = options.pop("shard")
        job = dataclasses.replace(job, run=run_record(sources, options))
        return shard_part(models, test, job, **options)
    return build_report(
        models, test, source=data, settings=settings, drawer=drawer, **options
    )


def _check_foreground_masks(test):
    if getattr(test, "mask_labels", None) is not None:
        raise ValueError(
            f"The data {test.name!r} has label masks (masks/labels.txt), which "
            "score segmentation models; a classification report reads "
            "foreground masks. Remove masks/labels.txt or give segmentation "
            "models."
        )


def _segmentation_demo_data(data, image_size, options):
    """``(train, test)`` of the segmentation demo: ``"sample"`` (its
    training stream is generated on demand) and its test split, or the
    user's data split as the classification demo splits it (a folder
    without ``train/`` and ``test/`` is one set: the models must not be
    scored on the images they were trained on)."""
    if data == "sample":
        return data, load_dataset(data, split="test", image_size=image_size)
    return train_test_datasets(
        data, image_size=image_size, seed=options.get("seed", 0)
    )


def _segmentation_report(given, sources, settings, options):
    """`segmentation_report` of the given ``(models, test)``, or of the
    demo pair trained on the data's training split (``given`` None)."""
    data, image_size = sources["data"], sources["image_size"]
    say = options.get("log", print) if options.get("verbose", 1) else _silent
    if given is None:
        train, test = _segmentation_demo_data(data, image_size, options)
        say(_data_line(test))
        with stage(
            "training the demo models", kept=_cache_note(sources["cache_dir"])
        ):
            models = segmentation_demo(
                train,
                epochs=sources["epochs"],
                seed=options.get("seed", 0),
                cache_dir=sources["cache_dir"],
                say=say,
            )
    else:
        models, test = given
    wanted = ("cam_layer", "cam_class", "num_examples", "seed", "batch_size")
    checks = faithfulness_settings(options.get("faithfulness", True))
    with stage(f"the evaluation of {len(test.labels):,} test images"):
        description, examples, created, records, explorer = segmentation_report(
            models,
            test,
            source=data,
            versions=library_versions(),
            settings={
                "epochs": settings["epochs"],
                "command_line": settings["command_line"],
            },
            faithfulness=checks,
            **{k: options[k] for k in wanted if k in options},
        )
    return Report(
        description=description,
        gallery=examples,
        created=created,
        records=records,
        explorer=explorer,
    )


def shard_part(models, test, job, **options):
    """Runs the pass of shard ``job`` (a `ShardJob`) and writes its part
    (`explain_attn.report.shards.evaluate_shard`); returns its path.

    Args:
        models, test: The report's models and test data.
        **options: `build_report`'s.
    """
    chosen = ("layers", "methods", "cam_layer", "cam_class")
    explanations, reference = report_explanations(
        models, **{name: options[name] for name in chosen if name in options}
    )
    check_positive_int("batch_size", options.get("batch_size", 128))
    return evaluate_shard(
        models,
        explanations,
        reference,
        test,
        job,
        layers=options.get("layers"),
        batch_size=options.get("batch_size", 128),
        verbose=options.get("verbose", 1),
        strategy=options.get("strategy"),
        chunk_size=options.get("chunk_size"),
        seed=options.get("seed", 0),
    )


SOURCE_ARGUMENTS = (
    "data",
    "attention_models",
    "baseline_model",
    "image_size",
    "epochs",
    "cache_dir",
    "safe_mode",
    "spurious_correlation",
    "attention_factory",
    "baseline_factory",
    "input_scale",
)
"""`report_from_sources`' arguments that say which models and data to
load: a shard's part records them for the merge."""


def open_run(sources, options):
    """``(models, test)`` of a run: the user's models and test data, or
    the demo's data and models trained on its training split (cached).

    Args:
        sources: `SOURCE_ARGUMENTS` by name (``attention_models`` a list).
        options: `build_report`'s options (``verbose``, ``log``,
            ``seed``, ``strategy`` are read; counts are checked), and
            ``retrain``, taken out of them.
    """
    retrain = options.pop("retrain", False)  # Read here only.
    counts = {"epochs": sources["epochs"], **options}
    counted = ("epochs", "num_examples", "batch_size")
    _check_counts(**{name: counts.get(name) for name in counted})
    given = _check_sources(
        sources["attention_models"],
        sources["baseline_model"],
        sources["spurious_correlation"],
    )
    verbose = options.get("verbose", 1)
    say = options.get("log", print) if verbose else _silent
    strategy, seed = options.get("strategy"), options.get("seed", 0)
    data, image_size = sources["data"], sources["image_size"]
    if given:
        models, test = _given_models_and_data(
            data,
            list(sources["attention_models"]),
            sources["baseline_model"],
            image_size=image_size,
            input_scale=sources["input_scale"],
            say=say,
            safe_mode=sources["safe_mode"],
            attention_factory=sources["attention_factory"],
            baseline_factory=sources["baseline_factory"],
            strategy=strategy,
        )
        say(_data_line(test))
        return models, test
    train, test = demo_data(
        data,
        image_size=image_size,
        seed=seed,
        spurious_correlation=sources["spurious_correlation"],
    )
    say(_data_line(test))
    cache_dir = sources["cache_dir"]
    with stage("training the demo models", kept=_cache_note(cache_dir)):
        models = demo_models(
            train,
            test,
            epochs=sources["epochs"],
            seed=seed,
            cache_dir=cache_dir,
            verbose=verbose,
            say=say,
            strategy=strategy,
            retrain=retrain,
        )
    return models, test


RECORDED_OPTIONS = (
    "layers",
    "methods",
    "cam_layer",
    "cam_class",
    "num_examples",
    "seed",
    "batch_size",
    "faithfulness",
    "chunk_size",
)
"""The `build_report` options a shard's part records for the merge."""


def run_record(sources, options):
    """The JSON-ready record of a run: ``sources`` (data, models and how
    they were loaded) and the `RECORDED_OPTIONS` given."""
    record = dict(sources)
    for name in RECORDED_OPTIONS:
        if name in options:
            value = options[name]
            if dataclasses.is_dataclass(value):
                value = dataclasses.asdict(value)
            record[name] = list(value) if isinstance(value, tuple) else value
    return json.loads(json.dumps(record))


def _cache_note(cache_dir):
    folder = cache_dir or cache_directory()
    return f"the demo models, cached in {folder}; a re-run reuses them"


def _data_line(test):
    return (
        f"Data: {test.name}, {len(test.labels)} test images of "
        f"{tuple(int(n) for n in test.image_shape)}, "
        f"{len(test.class_names)} classes"
        + ("" if test.has_masks else " (no masks)")
    )


def _given_models_and_data(
    data,
    attention_models,
    baseline_model,
    *,
    image_size,
    input_scale,
    say,
    strategy,
    **loading,
):
    """The user's models (`load_report_models`, in ``strategy``'s scope),
    then the test split in their channels, opened for streaming
    (`open_source`: an in-memory `Dataset` for the small built-in sets)."""
    with strategy_scope(strategy):
        models = load_report_models(
            attention_models,
            baseline_model,
            say=say,
            input_scale=input_scale,
            **loading,
        )
    test = open_source(
        data,
        split="test",
        image_size=image_size,
        channels=_channels_of(models),
        input_scale=input_scale or "unit",
    )
    return models, test


def _channels_of(models):
    """The channels of the models' images (1 or 3): the same for all."""
    channels = {input_shape(entry.state)[-1] for entry in models}
    if len(channels) > 1:
        raise ValueError(
            "The models take images with different channels "
            f"({', '.join(map(str, sorted(channels)))}); a report compares "
            "models on the same images. Give models of one kind."
        )
    return model_channels(models[0].state)


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
