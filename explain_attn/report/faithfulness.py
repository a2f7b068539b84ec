"""The report's Faithfulness section: the three checks on the report's models.

See `explain_attn.faithfulness` for the checks themselves; this module
chooses the images, runs each check on every model with the report's
explanations, and turns the results into the section's JSON.
"""

import dataclasses
import math
import time

import numpy as np

from explain_attn import metrics
from explain_attn.data.loaders import take_images
from explain_attn.explanations.explanation import Explainer
from explain_attn.explanations.predict import predict_classes
from explain_attn.faithfulness import (
    DEFAULT_STEPS,
    FAILURE_THRESHOLD,
    INTERVENTIONS,
    LAYERWISE_LIMIT,
    attention_interventions,
    deletion_insertion,
    randomization_check,
)
from explain_attn.options import RunOptions, check_choice, check_positive_int
from explain_attn.progress import progress_bar
from explain_attn.report.drawing import Drawing
from explain_attn.report.evaluate import batch_size_for
from explain_attn.report.faithfulness_figures import (
    deletion_insertion_figure,
    randomization_figure,
)
from explain_attn.report.section import Section
from explain_attn.stages import stage

__all__ = [
    "FaithfulnessSection",
    "FAITHFULNESS_CHOICES",
    "FAITHFULNESS_MODES",
    "FaithfulnessSettings",
    "demo_mode",
    "faithfulness_section",
    "faithfulness_settings",
]


@dataclasses.dataclass(frozen=True)
class FaithfulnessSettings:
    """How much work each check of the Faithfulness section does.

    Each check runs on a seeded random subset of the test images, at most
    the given number; a mode's size larger than the test split silently
    uses every image, a size the user asked for (``requested``) with a
    note in the section.

    Attributes:
        mode: ``"full"``, ``"fast"``, ``"demo"`` or ``"custom"`` (a mode
            with sizes changed), for the record.
        intervention_images: Test images of the attention interventions.
        randomization_images: Test images of the randomisation checks.
        deletion_images: Test images of the deletion and insertion curves.
        steps: Steps of the deletion and insertion curves.
        cascade: What one randomisation cascade step re-initialises:
            ``"auto"``, ``"layers"`` or ``"blocks"``
            (`explain_attn.faithfulness.randomization.cascade_steps`).
        requested: Names of the sizes the user set.
        note: What the section says about the mode's sizes, or ``None``.
    """

    mode: str
    intervention_images: int
    randomization_images: int
    deletion_images: int
    steps: int
    cascade: str
    requested: tuple = ()
    note: str | None = None


_FULL = FaithfulnessSettings(
    mode="full",
    intervention_images=1000,
    randomization_images=256,
    deletion_images=256,
    steps=DEFAULT_STEPS,
    cascade="auto",
)

FAITHFULNESS_MODES = {
    "full": _FULL,
    "fast": FaithfulnessSettings(
        mode="fast",
        intervention_images=256,
        randomization_images=32,
        deletion_images=64,
        steps=5,
        cascade="blocks",
    ),
    "demo": dataclasses.replace(
        _FULL,
        mode="demo",
        randomization_images=128,
        deletion_images=128,
        note=(
            "The demo runs the randomisation and deletion checks on 128 test "
            "images each, half of --faithfulness full's 256, so that its "
            "first report takes about 30 s on 2 CPU cores; their intervals "
            "are about 1.4 times as wide. --faithfulness full runs them on "
            "256."
        ),
    ),
}
"""The section's modes. ``full``: interventions on 1,000 test images,
randomisation and deletion curves (10 steps) on the same 256, the cascade
layer by layer up to `LAYERWISE_LIMIT` layers with weights and block by
block above. ``fast``, a subset of the same checks: interventions on 256
images, the randomisation cascade always block by block on 32 images,
deletion and insertion curves of 5 steps on 64 images. ``demo``, the
default of ``explain-attn report`` with no models on the bundled sample
data (`demo_mode`): ``full``'s checks with randomisation and deletion on
128 images, which halves their time (6-7 s of the demo's 30-37 s on a
2-core machine without AVX-512, `benchmarks/RESULTS.md`, issue 27, eighth
round; every finding of the demo report is the same as with ``full``).
The benchmarks (`benchmarks/bench_faithfulness.py`) time ``fast`` and
``full`` on a MobileNetV2."""

FAITHFULNESS_CHOICES = ("full", "fast", "off")
"""The values of ``explain-attn report --faithfulness``."""

_SIZES = ("intervention_images", "randomization_images", "deletion_images")


def faithfulness_settings(mode="full", **sizes):
    """The `FaithfulnessSettings` of a mode, with sample sizes changed.

    Args:
        mode: ``"full"``, ``"fast"``, ``"demo"`` (`FAITHFULNESS_MODES`)
            or ``"off"``; ``True`` and ``False`` mean ``"full"`` and
            ``"off"``; a `FaithfulnessSettings` and
            ``None`` (the section is off) are returned as they are.
        **sizes: ``intervention_images``, ``randomization_images``,
            ``deletion_images`` or ``steps``: positive integers replacing
            the mode's; ``None`` keeps the mode's.

    Returns:
        A `FaithfulnessSettings`, or ``None`` for ``"off"``.

    Raises:
        ValueError: For an unknown mode or size name, a size that is not a
            positive integer, or sizes given with ``"off"``.
    """
    given = {name: value for name, value in sizes.items() if value is not None}
    if isinstance(mode, FaithfulnessSettings) or (mode is None and not given):
        return mode
    if isinstance(mode, bool):
        mode = "full" if mode else "off"
    check_choice("faithfulness", mode, (*FAITHFULNESS_CHOICES, "demo"))
    unknown = sorted(set(sizes) - {*_SIZES, "steps"})
    if unknown:
        raise ValueError(
            f"Unknown faithfulness settings {unknown}; expected some of "
            f"{', '.join((*_SIZES, 'steps'))}."
        )
    for name, value in given.items():
        check_positive_int(name, value)
    if mode == "off":
        if given:
            raise ValueError(
                f"{', '.join(sorted(given))} set the faithfulness checks' "
                "sample sizes, but the checks are off. Leave them out, or "
                "choose the full or fast mode."
            )
        return None
    settings = FAITHFULNESS_MODES[mode]
    if not given:
        return settings
    return dataclasses.replace(
        settings,
        mode="custom",
        requested=tuple(sorted(given)),
        note=None,
        **given,
    )


def demo_mode(faithfulness, no_faithfulness=False, *, demo=False):
    """The mode of ``explain-attn report``'s ``--faithfulness`` and
    ``--no-faithfulness``: the one given, else ``"demo"`` for the demo
    (``demo``: no models given, the bundled sample data) and ``"full"``
    for any other report.

    Raises:
        ValueError: When the two options disagree.
    """
    if no_faithfulness and faithfulness not in (None, "off"):
        raise ValueError(
            f"--no-faithfulness and --faithfulness {faithfulness} disagree. "
            "Give one of them (--no-faithfulness is --faithfulness off)."
        )
    if no_faithfulness:
        return "off"
    return faithfulness or ("demo" if demo else "full")


def _sample(count, limit, seed):
    """Sorted positions of a seeded random subset of at most ``limit`` of
    ``count`` images (all of them when ``count <= limit``)."""
    if count <= limit:
        return np.arange(count)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(count, size=limit, replace=False))


def _own(explanations, entry):
    return [e for e in explanations if e.model_key == entry.key]


def _cam_target(explanations):
    """The class the CAMs among ``explanations`` explain (their ``target``).

    ``"predicted"``, ``"true"`` or a class index: the report's
    ``cam_class``; ``"predicted"`` when none of them depends on a class.

    Raises:
        ValueError: If the CAMs explain different classes.
    """
    targets = {e.target for e in explanations if e.uses_class}
    if len(targets) > 1:
        raise ValueError(
            "The faithfulness checks need the CAMs of a report to explain "
            f"one class choice. Received: {sorted(map(str, targets))}."
        )
    return targets.pop() if targets else "predicted"


def _explained_classes(entry, own, subset, options):
    """The class of each image of ``subset`` that the model's CAMs explain.

    The report's ``cam_class`` (`_cam_target` of ``own``, the model's
    explanations), as in the evaluation: each image's class predicted by
    the model, its true label, or one class index. The randomisation check
    keeps these classes through its cascade; the deletion and insertion
    curves compute the CAMs for them and record their probability.

    Returns:
        ``(n,)`` int32 classes.
    """
    target = _cam_target(own)
    if target == "true":
        return np.asarray(subset.labels, np.int32)
    if target == "predicted":
        predicted = predict_classes(
            entry.state,
            subset.images,
            batch_size=options.batch_size,
            strategy=options.strategy,
        )
        return predicted.astype(np.int32)
    return np.full(len(subset.labels), target, np.int32)


def _interventions(models, explanations, subset, options):
    results = []
    for entry in models:
        own = {e.layer: e for e in _own(explanations, entry) if e.is_attention}
        if not own:
            continue
        result = attention_interventions(
            entry.state,
            subset,
            explanations=own.values(),
            seed=options.seed,
            batch_size=options.batch_size,
            strategy=options.strategy,
        )
        for row in result["layers"]:
            row["id"] = own[row["layer"]].key
            row["label"] = own[row["layer"]].label
        results.append({"model": entry.key, "name": entry.name, **result})
    return results


def _randomization(models, explanations, subset, options, cascade):
    results, flags = [], []
    for entry in models:
        own = _own(explanations, entry)
        if not own:
            continue
        result = randomization_check(
            entry.state,
            subset.images,
            explanations=own,
            class_index=_explained_classes(entry, own, subset, options),
            seed=options.seed,
            batch_size=options.batch_size,
            cascade=cascade,
            strategy=options.strategy,
        )
        by_name = {e.method_key: e for e in own}
        result["short_labels"] = {
            name: by_name[name].short_label for name in result["maps"]
        }
        labels = {name: by_name[name].label for name in result["maps"]}
        for check in result["checks"]:
            explanation = by_name[check["map"]]
            check["id"] = explanation.key
            check["label"] = explanation.label
            if not check["passed"]:
                flags.append(_failure_sentence(check, result["threshold"]))
        results.append(
            {"model": entry.key, "name": entry.name, "labels": labels, **result}
        )
    return results, flags


def _curve_rows(entry, own, curves, seed):
    random = curves["random"]
    rows = []
    for explanation in [*own, None]:
        values = curves[explanation.key if explanation else "random"]
        row = {
            "id": explanation.key if explanation else f"{entry.key}:random",
            "label": explanation.label
            if explanation
            else f"{entry.name} · random order",
            "short_label": explanation.short_label
            if explanation
            else "random order",
            "model": entry.key,
            "model_name": entry.name,
            "random": explanation is None,
            "deletion_curve": values["deletion"].mean(axis=0).tolist(),
            "insertion_curve": values["insertion"].mean(axis=0).tolist(),
        }
        for curve in ("deletion", "insertion"):
            auc = values[f"{curve}_auc"]
            row[f"{curve}_auc"] = metrics.summarize(auc, seed=seed)
            row[f"{curve}_vs_random"] = (
                None
                if explanation is None
                else metrics.paired_difference(
                    auc, random[f"{curve}_auc"], seed=seed
                )
            )
        rows.append(row)
    return rows


def _deletion(models, explanations, subset, options, steps):
    rows, fractions = [], None
    for entry in models:
        own = _own(explanations, entry)
        if not own:
            continue
        classes = _explained_classes(entry, own, subset, options)
        explainer = Explainer(own, strategy=options.strategy)
        maps = explainer(
            subset.images,
            class_index=classes,
            labels=subset.labels,
            batch_size=options.batch_size,
        )
        curves = deletion_insertion(
            entry.state,
            subset.images,
            classes,
            {e.key: maps[e] for e in own},
            steps=steps,
            seed=options.seed,
            batch_size=batch_size_for(
                subset.images.shape[1:], 4 * options.batch_size
            ),
            strategy=options.strategy,
        )
        fractions = curves["fractions"].tolist()
        rows.extend(_curve_rows(entry, own, curves, options.seed))
    return {"fractions": fractions, "rows": rows}


def _timed(say, name, function, models, explanations, subset, *args):
    """Runs one check on ``subset`` (``(test, indices)``: those images are
    read now, and dropped after the check)."""
    started = time.perf_counter()
    progress = progress_bar(len(models), f"faithfulness: {name}", unit="models")
    with progress as bar:
        result = function(
            _counted(models, bar), explanations, take_images(*subset), *args
        )
    say(f"Faithfulness: {name} ({time.perf_counter() - started:.1f} s)")
    return result


def _counted(models, bar):
    """``models``, advancing ``bar`` as each one's check finishes."""
    for entry in models:
        yield entry
        bar.add()


def _subsets(test, settings, seed, say):
    """The seeded subset of each check, and notes on the clamped sizes."""
    count = len(test.labels)
    subsets, notes = {}, []
    for name in _SIZES:
        wanted = getattr(settings, name)
        subsets[name] = (test, _sample(count, wanted, seed))
        if wanted > count and name in settings.requested:
            check = name.removesuffix("_images").replace("_", " ")
            notes.append(
                f"The {check} check asked for {wanted} test images; the test "
                f"split has {count}, so it uses all {count}."
            )
    if settings.note:
        notes.insert(0, settings.note)
    for note in notes:
        say(f"Faithfulness: {note}")
    return subsets, notes


def _run_checks(models, explanations, subsets, settings, options, say):
    """The three checks' results, each on its own subset, timed."""

    def run(name, function, size, *more):
        subset = subsets[size]
        return _timed(
            say, name, function, models, explanations, subset, options, *more
        )

    return (
        run("interventions", _interventions, "intervention_images"),
        run(
            "randomisation",
            _randomization,
            "randomization_images",
            settings.cascade,
        ),
        run(
            "deletion and insertion",
            _deletion,
            "deletion_images",
            settings.steps,
        ),
    )


def faithfulness_section(
    models,
    explanations,
    test,
    *,
    settings="full",
    seed=0,
    batch_size=128,
    say=print,
    strategy=None,
):
    """Runs every faithfulness check on the report's models; CAMs explain
    the explanations' ``target`` (`_explained_classes`).

    Args:
        models: The report's `ReportModel` list.
        explanations: The report's `Explanation` list.
        test: A `Dataset` or a streamed source; only each check's sample
            is read (`take_images`), just before the check.
        settings: A `FaithfulnessSettings`, or a mode (``"full"``,
            ``"fast"``; see `FAITHFULNESS_MODES`): each check's sample
            size, the deletion steps and the cascade's unit.
        seed: Seed of every random choice of the checks.
        batch_size: The most images per forward pass (`batch_size_for`;
            the deletion curves use up to 4 times as many).
        say: Where progress messages go.
        strategy: ``None`` or a `tf.distribute` strategy for every pass.

    Returns:
        A JSON-ready dict (NaN where a value is undefined): ``settings``,
        ``interventions`` (one `attention_interventions` result per
        attention model, with ``model``), ``randomization`` (one
        `randomization_check` result per model, with ``model`` and map
        ``labels``), ``deletion_insertion`` (``fractions`` and ``rows``,
        one per explanation and one random order per model, with mean
        curves, AUC summaries and the paired difference to the random
        order), ``flags`` (sentences naming each map that fails a check)
        and ``notes``.

    Raises:
        ValueError: For an unknown mode (``"off"`` included: skip the
            section instead).
    """
    settings = faithfulness_settings(settings)
    if settings is None:
        raise ValueError(
            "faithfulness_section needs the full or fast mode; for 'off', "
            "leave the section out."
        )
    subsets, size_notes = _subsets(test, settings, seed, say)
    options = RunOptions(
        batch_size=batch_size_for(test.image_shape, batch_size),
        strategy=strategy,
        seed=seed,
    )

    interventions, (randomization, flags), curves = _run_checks(
        models, explanations, subsets, settings, options, say
    )
    notes = list(
        dict.fromkeys(note for r in interventions for note in r["notes"])
    )
    return {
        "settings": _settings_record(
            settings, subsets, test, seed, explanations
        ),
        "definitions": dict(INTERVENTIONS),
        "interventions": interventions,
        "randomization": randomization,
        "deletion_insertion": curves,
        "flags": flags,
        "notes": size_notes + notes,
    }


def _settings_record(settings, subsets, test, seed, explanations):
    randomized = len(subsets["randomization_images"][1])
    deleted = len(subsets["deletion_images"][1])
    return {
        "mode": settings.mode,
        # The randomisation checks' images; kept for readers of the JSON
        # written before the checks had sizes of their own.
        "num_images": int(randomized),
        "num_intervention_images": int(len(subsets["intervention_images"][1])),
        "num_randomization_images": int(randomized),
        "num_deletion_images": int(deleted),
        "steps": settings.steps,
        "cam_class": _cam_target(explanations),
        "cascade": settings.cascade,
        "layerwise_limit": LAYERWISE_LIMIT,
        "threshold": FAILURE_THRESHOLD,
        "mask_resize": "area",
        "blur_sigma_pixels": float(min(test.image_shape[:2]) / 10.0),
        "seed": seed,
    }


def _failure_sentence(check, threshold):
    parts = []
    final = check["final_spearman_median"]
    own = check["independent_spearman_median"]
    if math.isfinite(final) and final > threshold:
        parts.append(
            f"median Spearman {final:.2f} with the original after every "
            "layer was re-initialised"
        )
    if math.isfinite(own) and own > threshold:
        parts.append(
            f"median Spearman {own:.2f} after its own weights alone were "
            "re-initialised"
        )
    return (
        f"{check['label']} fails the randomisation check: "
        + " and ".join(parts)
        + f" (threshold {threshold}). The map does not depend on what the "
        "model learnt."
    )


class FaithfulnessSection(Section):
    """The faithfulness checks on samples read again. Within a recording
    (the CLI's, `explain_attn.stages`), a failure leaves the section out."""

    name = "faithfulness"
    partial = "_faithfulness.html"
    phase = "samples"

    def compute(self, run, observed, data):
        if run.faithfulness is None:
            return None
        result = None  # A failure in a recording leaves the section out.
        with stage("the faithfulness checks", section="faithfulness"):
            result = faithfulness_section(
                run.models,
                run.explanations,
                run.test,
                settings=run.faithfulness,
                seed=run.seed,
                batch_size=run.batch_size,
                strategy=run.strategy,
                say=run.say,
            )
        return result

    def shown(self, report):
        return bool(report.description.faithfulness)

    def figures(self, results, attachments, data):
        section = results["faithfulness"]
        if not section:
            return {}
        return {
            "randomization": Drawing(randomization_figure, (section,)),
            "deletion_insertion": Drawing(
                deletion_insertion_figure, (section,)
            ),
        }

    def context(self, report):
        drawn = report.figures["faithfulness"]
        return {
            "faithfulness_figures": {
                name: drawn.get(name)
                for name in ("randomization", "deletion_insertion")
            }
        }
