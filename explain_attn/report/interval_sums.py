"""What the images of a shard add to the report's bootstrap intervals.

Every mean the report puts a bootstrap interval on is the mean of one
per-image vector (NaN where an image has no value, or lies outside the
subset): a metric over all, correctly or wrongly classified images, an
agreement, a paired difference (``a - b``). `interval_vectors` and
`baseline_vectors` name these vectors; `interval_sums` turns them into the
exact per-replicate sums of the report's Poisson bootstrap
(`explain_attn.metrics.BootstrapSums`: ``sum_i w[b, i] x_i`` and
``sum_i w[b, i]``, counts keyed by image). A shard writes the sums of its
images in its part, a merge adds them (`add_sums`, exact and in any
order), and `explain_attn.report.summaries.summaries` and
`explain_attn.report.baselines.baselines_section` read each interval from
the sums: the merge never draws the counts of all images at once.

Kept on the per-image path (the merge reads the per-image rows, which the
report's ``per_image`` section holds anyway):

- the means, medians, ``n`` and ``nan_count`` next to each interval;
- the Wilcoxon signed-rank p-values of paired differences (ranks);
- the Wilson intervals of accuracies (closed form of a count);
- the per-class intervals (`explain_attn.report.per_class`: a bootstrap
  per class, with its own number of replicates);
- the faithfulness and segmentation sections, computed at the merge from
  images read again.
"""

import numpy as np

__all__ = [
    "add_sums",
    "baseline_vectors",
    "interval_sums",
    "interval_vectors",
]


def _difference(values_a, values_b):
    """``a - b`` per image, NaN where either is missing."""
    return np.asarray(values_a, float) - np.asarray(values_b, float)


def _explanation_vectors(explanation, evaluation, reference, correct):
    own = evaluation.values[explanation]
    chosen = correct[explanation.model_key]
    for name, values in own.items():
        values = np.asarray(values, float)
        key = ("summary", explanation.key)
        yield (*key, "all", name), values
        yield (*key, "correct", name), np.where(chosen, values, np.nan)
        yield (*key, "wrong", name), np.where(chosen, np.nan, values)
    if explanation in evaluation.agreement:
        for name, values in evaluation.agreement[explanation].items():
            yield ("agreement", explanation.key, name), values
        reference_mass = evaluation.values[reference].get("mass_in_mask")
        if reference_mass is not None:
            yield (
                ("vs_reference", explanation.key),
                _difference(own["mass_in_mask"], reference_mass),
            )


def interval_vectors(models, explanations, reference, evaluation, labels):
    """Yields ``(key, vector)``: a tuple of strings and the ``(N,)`` float
    vector of each mean `summaries` puts an interval on, over the images
    of ``evaluation`` (an `explain_attn.report.evaluate.Evaluation`) with
    ``labels``; one vector at a time, so that only one is held."""
    labels = np.asarray(labels)
    correct = {
        key: np.asarray(predicted) == labels
        for key, predicted in evaluation.predictions.items()
    }
    baseline = next(m.key for m in models if m.role == "baseline")
    for m in models:
        if m.role == "attention":
            difference = _difference(correct[m.key], correct[baseline])
            yield ("comparison", m.key), difference
    for explanation in explanations:
        yield from _explanation_vectors(
            explanation, evaluation, reference, correct
        )


def baseline_vectors(values, own_metrics):
    """The vectors of `explain_attn.report.baselines.baselines_section`:
    ``(shown, marks)``, the baselines' metrics and each explanation's
    difference with the flat map, each yielding ``(key, vector)``.

    Args:
        values: Baseline key -> metric -> ``(N,)`` values (``flat`` among
            them).
        own_metrics: Explanation id -> metric -> ``(N,)`` values.
    """
    shown = (
        (("baseline", key, name), np.asarray(row, float))
        for key, rows in values.items()
        for name, row in rows.items()
    )
    marks = (
        (("vs_flat", explanation_id, name), _difference(own[name], flat))
        for explanation_id, own in own_metrics.items()
        for name, flat in values["flat"].items()
        if name in own
    )
    return shown, marks


def interval_sums(vectors, keyed):
    """Key -> `explain_attn.metrics.BootstrapSums` of each ``(key,
    vector)`` of ``vectors`` under ``keyed`` (the
    `explain_attn.metrics.PoissonBootstrap` of the vectors' images)."""
    pairs = list(vectors)
    found = keyed.keyed_sums_of([vector for _, vector in pairs])
    return {key: sums for (key, _), sums in zip(pairs, found, strict=True)}


def add_sums(parts):
    """The sums of the union of disjoint image sets: ``parts`` are dicts
    from `interval_sums`, the same keys in each (empty dicts, from shards
    without images, are skipped)."""
    parts = [part for part in parts if part]
    if not parts:
        return {}
    total = dict(parts[0])
    for part in parts[1:]:
        if part.keys() != total.keys():
            raise ValueError(
                "Interval sums to add must hold the same statistics. "
                f"Received: {len(total)} and {len(part)} statistics"
            )
        for key, sums in part.items():
            total[key] = total[key] + sums
    return total
