"""The report's second stage: from per-image numbers to summary tables.

Accuracies with Wilson intervals, the paired comparison of each attention
model with the baseline, and per explanation every metric's mean with a
bootstrap interval, over all, correctly and wrongly classified images.
Every interval is a Poisson bootstrap keyed by image
(`explain_attn.metrics.bootstrap`, `report_bootstrap`), read from the
exact sums of its replicates (`explain_attn.report.interval_sums`), which
shards add up.
"""

import math
from typing import TypedDict

import numpy as np

import explain_attn.report.figures as figures
from explain_attn import metrics
from explain_attn.report.demo import DEMO_ARCHITECTURES
from explain_attn.report.drawing import Drawing
from explain_attn.report.evaluate import Scores
from explain_attn.report.interval_sums import interval_sums, interval_vectors
from explain_attn.report.section import Section

__all__ = [
    "ModelSummaries",
    "ModelsSection",
    "BOOTSTRAP_DRAWS",
    "bootstrap_resamples",
    "report_bootstrap",
    "summaries",
]

BOOTSTRAP_DRAWS = 20_000_000
"""Cap on resamples x images of one bootstrap interval (see
`bootstrap_resamples`)."""


def bootstrap_resamples(count):
    """Bootstrap resamples for intervals over ``count`` images.

    A bootstrap costs resamples x images, while its Monte Carlo
    error depends on the number of resamples only. We use 10,000 resamples
    up to 2,000 images, then ``BOOTSTRAP_DRAWS // count`` (2,000 at 10,000
    images), never fewer than 1,000; the report states the number.
    """
    return int(min(10_000, max(1_000, BOOTSTRAP_DRAWS // max(count, 1))))


class ModelSummaries(TypedDict):
    """The models section's result (`summaries`): its keys of
    ``report.json``, in order."""

    format: str
    bootstrap_resamples: int
    bootstrap: str
    models: list
    """One row per model: key, role, name, file, parameters, accuracy,
    training, input."""
    comparisons: list
    """Each attention model against the baseline (paired accuracy)."""
    reference: dict
    explanations: list
    """One row per explanation: its summaries and agreement."""
    notes: list
    per_image: dict
    """Labels, predictions, metrics and agreement of every image."""


def _model_rows(models, correct):
    return [
        {
            "key": entry.key,
            "role": entry.role,
            "name": entry.name,
            "file": entry.file,
            "architecture": entry.architecture,
            "parameters": int(entry.model.count_params()),
            "accuracy": metrics.accuracy_interval(correct[entry.key]),
            "training": entry.training,
            "input": entry.input_note,
        }
        for entry in models
    ]


def comparison_sentence(attention, baseline, difference):
    """One paragraph on the accuracy difference of two model rows."""
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


def _comparisons(model_rows, correct, sums):
    baseline = next(m for m in model_rows if m["role"] == "baseline")
    comparisons = []
    for row in model_rows:
        if row["role"] != "attention":
            continue
        difference = metrics.paired_difference(
            correct[row["key"]].astype(float),
            correct[baseline["key"]].astype(float),
            bootstrap=sums[("comparison", row["key"])],
        )
        comparisons.append(
            {
                "attention": row["key"],
                "reference": baseline["key"],
                **difference,
                "sentence": comparison_sentence(row, baseline, difference),
            }
        )
    return comparisons


def _subset_summary(own, chosen, sums):
    """Metric -> `metrics.summarize` of the images ``chosen`` (a mask),
    with the interval from ``sums`` (metric -> `metrics.BootstrapSums`)."""
    return {
        name: metrics.summarize(values[chosen], bootstrap=sums[name])
        for name, values in own.items()
    }


def _explanation_row(explanation, evaluation, reference, correct, sums):
    own = evaluation.values[explanation]
    key = explanation.key
    subsets = {
        "all": np.ones(len(correct[explanation.model_key]), bool),
        "correct": correct[explanation.model_key],
        "wrong": ~correct[explanation.model_key],
    }
    row = {
        "id": explanation.key,
        "label": explanation.label,
        "short_label": explanation.short_label,
        "model": explanation.model_key,
        "method": explanation.method,
        "layer": explanation.layer,
        "summary": {
            subset: _subset_summary(
                own, chosen, {n: sums[("summary", key, subset, n)] for n in own}
            )
            for subset, chosen in subsets.items()
        },
    }
    if explanation in evaluation.agreement:
        row["agreement_with_reference"] = {
            name: metrics.summarize(
                values, bootstrap=sums[("agreement", key, name)]
            )
            for name, values in evaluation.agreement[explanation].items()
        }
        reference_mass = evaluation.values[reference].get("mass_in_mask")
        if reference_mass is not None:
            row["mass_in_mask_vs_reference"] = metrics.paired_difference(
                own["mass_in_mask"],
                reference_mass,
                bootstrap=sums[("vs_reference", key)],
            )
    return row


def _per_image(labels, predictions, evaluation):
    def lists(rows):
        return {
            explanation.key: {name: v.tolist() for name, v in row.items()}
            for explanation, row in rows.items()
        }

    return {
        "labels": labels.tolist(),
        "predictions": {k: v.tolist() for k, v in predictions.items()},
        "metrics": lists(evaluation.values),
        "agreement_with_reference": lists(evaluation.agreement),
    }


def report_bootstrap(num_images, seed, images=None):
    """The report's `metrics.PoissonBootstrap` over images ``0`` to
    ``num_images - 1`` (or the test set's images ``images``, e.g. a
    shard's ``range(start, stop)``), with `bootstrap_resamples` of
    ``num_images`` replicates: every interval of the report is keyed by
    image, so it is the same however the images were split into shards."""
    return metrics.PoissonBootstrap(
        np.arange(num_images) if images is None else np.asarray(images),
        num_resamples=bootstrap_resamples(num_images),
        seed=seed,
    )


def summaries(
    models,
    explanations,
    reference,
    evaluation,
    test,
    seed,
    *,
    keyed=None,
    sums=None,
):
    """The report's numbers: models, comparisons, explanations, per image.

    Args:
        keyed: The `report_bootstrap` of the test images (drawn when
            ``None``).
        sums: The `interval_sums` of every `interval_vectors` (added up
            from shards), or ``None`` to compute them here with ``keyed``.

    Returns:
        `ModelSummaries`: JSON-ready (see `explain_attn.report.write_json`).
    """
    labels = np.asarray(test.labels)
    predictions = evaluation.predictions
    correct = {key: predictions[key] == labels for key in predictions}
    model_rows = _model_rows(models, correct)
    if sums is None:
        if keyed is None:
            keyed = report_bootstrap(len(labels), seed)
        vectors = interval_vectors(
            models, explanations, reference, evaluation, labels
        )
        sums = interval_sums(vectors, keyed)
    resamples = bootstrap_resamples(len(labels))
    notes = []
    if not test.has_masks:
        notes.append(
            "This dataset has no foreground masks, so the foreground metrics "
            "(mass in mask, pointing game, rank accuracy, ROC AUC, top-20% "
            "IoU) are left out."
        )
    return ModelSummaries(
        format="explain-attn report 1",
        bootstrap_resamples=resamples,
        bootstrap="poisson",
        models=model_rows,
        comparisons=_comparisons(model_rows, correct, sums),
        reference={
            "id": reference.key,
            "label": reference.label,
            "method": reference.method,
            "layer": reference.layer,
        },
        explanations=[
            _explanation_row(e, evaluation, reference, correct, sums)
            for e in explanations
        ],
        notes=notes,
        per_image=_per_image(labels, predictions, evaluation),
    )


class ModelsSection(Section):
    """The models, their comparisons, the explanations' tables and the
    per-image numbers (`summaries`), from the pass's scores."""

    name = "models"
    partial = "_models.html"

    def contributors(self, run):
        return {"evaluation": Scores(run.explanations, run.reference)}

    def compute(self, run, observed, data):
        return summaries(
            run.models,
            run.explanations,
            run.reference,
            observed["evaluation"],
            run.test,
            run.seed,
            keyed=run.keyed,
            sums=run.sums,
        )

    def keys(self, result, data):
        return dict(result)

    def figures(self, results, attachments, data):
        histories = {
            row["name"]: (row["training"] or {}).get("history")
            for row in results["models"]["models"]
        }
        return {"curves": Drawing(figures.training_curves, (histories,))}

    def context(self, report):
        return {"curves": report.figures["models"]["curves"]}
