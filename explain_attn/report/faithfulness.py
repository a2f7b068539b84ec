"""The report's Faithfulness section: the three checks on the report's models.

See `explain_attn.faithfulness` for the checks themselves; this module
chooses the images, runs each check on every model with the report's
explanations, and turns the results into the section's JSON.
"""

import math
import time

import numpy as np

from explain_attn import metrics
from explain_attn.explanations.explanation import Explainer
from explain_attn.faithfulness import (
    DEFAULT_STEPS,
    FAILURE_THRESHOLD,
    INTERVENTIONS,
    attention_interventions,
    deletion_insertion,
    randomization_check,
)
from explain_attn.faithfulness.common import check_positive

__all__ = [
    "DEFAULT_MAX_IMAGES",
    "DEFAULT_MAX_INTERVENTION_IMAGES",
    "faithfulness_section",
]

DEFAULT_MAX_IMAGES = 256
"""Test images of the randomisation checks and the deletion curves.

With the demo models on the sample data (2 CPU cores) the whole section
takes about 12 s against 19 s for the rest of the report: 0.65 times."""

DEFAULT_MAX_INTERVENTION_IMAGES = 1000
"""Test images of the interventions (one forward pass per image and
intervention, so they afford more images and tighter intervals)."""


class _Subset:
    """A seeded random subset of a dataset's images, labels and masks."""

    def __init__(self, dataset, limit, seed):
        count = len(dataset.labels)
        if count <= limit:
            indices = np.arange(count)
        else:
            rng = np.random.default_rng(seed)
            indices = np.sort(rng.choice(count, size=limit, replace=False))
        self.indices = indices
        self.images = dataset.images[indices]
        self.labels = np.asarray(dataset.labels)[indices]
        masks = getattr(dataset, "masks", None)
        self.masks = None if masks is None else masks[indices]


def _own(explanations, entry):
    return [e for e in explanations if e.model_key == entry.key]


def _interventions(models, explanations, subset, seed, batch_size):
    results = []
    for entry in models:
        own = {
            e.layer: e
            for e in _own(explanations, entry)
            if e.method == "attention"
        }
        if not own:
            continue
        result = attention_interventions(
            entry.model,
            subset,
            layers=list(own),
            seed=seed,
            batch_size=batch_size,
        )
        for row in result["layers"]:
            row["id"] = own[row["layer"]].key
            row["label"] = own[row["layer"]].label
        results.append({"model": entry.key, "name": entry.name, **result})
    return results


def _randomization(models, explanations, subset, seed, batch_size):
    results, flags = [], []
    for entry in models:
        own = _own(explanations, entry)
        layers = [e.layer for e in own if e.method == "attention"]
        cams = [e for e in own if e.method != "attention"]
        if not cams and not layers:
            continue
        result = randomization_check(
            entry.model,
            subset.images,
            layers=layers or None,
            grad_cam_layer=cams[0].layer if cams else None,
            cam_methods=[e.method for e in cams] or ("grad_cam",),
            seed=seed,
            batch_size=batch_size,
        )
        by_name = {e.method_key: e for e in own}
        labels = {
            name: by_name[name].label if name in by_name else name
            for name in result["maps"]
        }
        result["short_labels"] = {
            name: by_name[name].short_label if name in by_name else name
            for name in result["maps"]
        }
        for check in result["checks"]:
            explanation = by_name.get(check["map"])
            check["id"] = explanation.key if explanation else check["map"]
            check["label"] = labels[check["map"]]
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


def _deletion(models, explanations, subset, seed, batch_size, steps):
    rows, fractions = [], None
    for entry in models:
        own = _own(explanations, entry)
        if not own:
            continue
        maps = Explainer(own)(
            subset.images, class_index=subset.labels, batch_size=batch_size
        )
        curves = deletion_insertion(
            entry.model,
            subset.images,
            subset.labels,
            {e.key: maps[e] for e in own},
            steps=steps,
            seed=seed,
            batch_size=4 * batch_size,
        )
        fractions = curves["fractions"].tolist()
        rows.extend(_curve_rows(entry, own, curves, seed))
    return {"fractions": fractions, "rows": rows}


def _timed(say, name, function, *args):
    started = time.perf_counter()
    result = function(*args)
    say(f"Faithfulness: {name} ({time.perf_counter() - started:.1f} s)")
    return result


def faithfulness_section(
    models,
    explanations,
    test,
    *,
    seed=0,
    batch_size=128,
    max_images=DEFAULT_MAX_IMAGES,
    max_intervention_images=DEFAULT_MAX_INTERVENTION_IMAGES,
    steps=DEFAULT_STEPS,
    say=print,
):
    """Runs every faithfulness check on the report's models.

    Args:
        models: The report's `ReportModel` list.
        explanations: The report's `Explanation` list.
        test: The test `explain_attn.data.Dataset`.
        seed: Seed of the image subsets, permutations, re-initialisation,
            random orders and bootstrap intervals.
        batch_size: Images per forward pass.
        max_images: Test images (a seeded random subset) of the
            randomisation checks and the deletion and insertion curves.
        max_intervention_images: Test images of the interventions.
        steps: Steps of the deletion and insertion curves.
        say: Where progress messages go.

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
    """
    check_positive("max_images", max_images)
    check_positive("max_intervention_images", max_intervention_images)
    checked = _Subset(test, max_images, seed)
    intervened = _Subset(test, max_intervention_images, seed)
    interventions = _timed(
        say, "interventions", _interventions,
        models, explanations, intervened, seed, batch_size,
    )  # fmt: skip
    randomization, flags = _timed(
        say, "randomisation", _randomization,
        models, explanations, checked, seed, batch_size,
    )  # fmt: skip
    curves = _timed(
        say, "deletion and insertion", _deletion,
        models, explanations, checked, seed, batch_size, steps,
    )  # fmt: skip
    notes = list(
        dict.fromkeys(note for r in interventions for note in r["notes"])
    )
    return {
        "settings": {
            "num_images": int(len(checked.indices)),
            "num_intervention_images": int(len(intervened.indices)),
            "steps": steps,
            "threshold": FAILURE_THRESHOLD,
            "mask_resize": "area",
            "blur_sigma_pixels": float(min(test.images.shape[1:3]) / 10.0),
            "seed": seed,
        },
        "definitions": dict(INTERVENTIONS),
        "interventions": interventions,
        "randomization": randomization,
        "deletion_insertion": curves,
        "flags": flags,
        "notes": notes,
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
