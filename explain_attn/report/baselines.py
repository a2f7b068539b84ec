"""Chance levels of every metric: a flat map and a centre prior.

A metric's value means little without what a map that knows nothing would
score on the same masks. Two such maps are scored here, through the same
metric functions (`explain_attn.metrics.registry`) and on the same masks as
the real maps:

- **flat map**: every pixel equal. Its mass in mask is the mask's share of
  the image, its ROC AUC 0.5, its pointing game the mask's share (ties are
  broken in expectation).
- **centre prior**: an isotropic-in-relative-units Gaussian centred on the
  image, ``exp(-((y - cy)^2 / (2 (s H)^2) + (x - cx)^2 / (2 (s W)^2)))``
  with ``s = CENTRE_SIGMA_FRACTION`` (a quarter of the side). Objects in
  photographs sit near the centre: on VOC07 a centre point already scores
  69.6 % in the pointing game (TorchRay's published table), so an
  explanation should beat this prior, not only the flat map.

The report marks a foreground metric whose paired difference with the flat
map is not above zero (the interval's lower end at or below 0).
"""

import dataclasses

import numpy as np

import explain_attn.report.figures as figures
from explain_attn import metrics
from explain_attn.metrics import METRIC_DEFINITIONS
from explain_attn.report.contributions import (
    Contributor,
    Part,
    chunk_length,
)
from explain_attn.report.drawing import Drawing
from explain_attn.report.evaluate import score_slices
from explain_attn.report.interval_sums import baseline_vectors, interval_sums
from explain_attn.report.section import Section

__all__ = [
    "BaselinesSection",
    "BASELINES",
    "CENTRE_SIGMA_FRACTION",
    "BaselineValues",
    "Baselines",
    "baseline_maps",
    "baseline_results",
    "baselines_section",
    "baseline_sums",
    "baseline_values",
    "centre_prior",
    "flat_map",
]

CENTRE_SIGMA_FRACTION = 0.25
"""The centre prior's standard deviation, as a fraction of each side."""
MARK_RESAMPLES = 1_000
"""Bootstrap resamples of the paired difference with the flat map that
decides the "not above chance" mark (a yes/no, not a shown interval)."""

BASELINES = {
    "flat": (
        "flat map (chance)",
        "every pixel equal: the level of a map that knows nothing",
    ),
    "centre": (
        "centre prior",
        f"a Gaussian centred on the image, σ = {CENTRE_SIGMA_FRACTION:g} of "
        "each side: the level of 'the object is in the middle'",
    ),
}
"""Baseline key -> (label, one-line definition)."""


def flat_map(shape):
    """A flat ``(H, W)`` float32 map of ones."""
    return np.ones(shape, np.float32)


def centre_prior(shape, *, sigma_fraction=CENTRE_SIGMA_FRACTION):
    """A centred Gaussian ``(H, W)`` float32 map, 1 at the centre.

    Args:
        shape: ``(H, W)``.
        sigma_fraction: Standard deviation as a fraction of each side.

    Returns:
        ``exp(-(dy^2 / (2 (f H)^2) + dx^2 / (2 (f W)^2)))`` with ``dy``,
        ``dx`` the distances of pixel centres from the image centre.
    """
    if not 0 < sigma_fraction:
        raise ValueError(
            "sigma_fraction must be positive. Received: "
            f"sigma_fraction={sigma_fraction!r}"
        )
    height, width = shape
    rows = (np.arange(height) + 0.5 - height / 2) / (sigma_fraction * height)
    columns = (np.arange(width) + 0.5 - width / 2) / (sigma_fraction * width)
    prior = np.exp(-0.5 * (rows[:, None] ** 2 + columns[None, :] ** 2))
    return prior.astype(np.float32)


def baseline_maps(shape):
    """Baseline key -> ``(H, W)`` map, in the order of `BASELINES`."""
    return {"flat": flat_map(shape), "centre": centre_prior(shape)}


def baseline_values(masks, metric_functions=None):
    """Per-image metric values of each baseline map on ``masks``.

    Args:
        masks: ``(N, H, W)`` bool foreground masks.
        metric_functions: Metric name -> ``function(maps, masks)``; by
            default every foreground metric of the registry.

    Returns:
        Baseline key -> metric name -> ``(N,)`` float64 values; computed
        in slices of at most `explain_attn.report.evaluate.METRIC_PIXELS`
        mask pixels, as the explanations' values are.
    """
    functions = metric_functions or metrics.FOREGROUND_METRICS
    masks = np.asarray(masks, bool)
    templates = baseline_maps(masks.shape[1:])
    values = {key: {name: [] for name in functions} for key in templates}
    for part in score_slices(len(masks), masks.shape[1] * masks.shape[2]):
        chunk = masks[part]
        for key, template in templates.items():
            if metric_functions is None:  # Every metric: the map sorted once.
                row = metrics.foreground_metrics_of_one_map(template, chunk)
            else:
                maps = np.broadcast_to(template, chunk.shape)
                row = {n: f(maps, chunk) for n, f in functions.items()}
            for name, value in row.items():
                values[key][name].append(value)
    return {
        key: {name: np.concatenate(parts) for name, parts in row.items()}
        for key, row in values.items()
    }


class BaselineValues(Contributor):
    """An `evaluate` contributor scoring the baseline maps on each chunk's
    masks, so the masks need not be kept (`baseline_values`, chunk by
    chunk: the same per-image numbers).

    Its result (`reduce`): baseline key -> metric name -> ``(N,)``
    values, or ``None`` when the data has no masks.
    """

    def __init__(self, metric_functions=None):
        super().__init__()
        self.metric_functions = metric_functions

    def contribute(self, start, images, maps, labels=None, masks=None):
        """Rows ``(baseline key, metric)``: per-image values; none
        without masks."""
        stop = start + chunk_length(images, labels, masks)
        if masks is None:
            return Part(start, stop)
        values = baseline_values(masks, self.metric_functions)
        rows = {
            (key, name): value
            for key, row in values.items()
            for name, value in row.items()
        }
        return Part(start, stop, rows)

    def reduce(self, total):
        if total is None or not total.rows:
            return None
        values = {}
        for (key, name), row in total.rows.items():
            values.setdefault(key, {})[name] = row
        return values


def _as_array(values):
    return np.array([np.nan if v is None else v for v in values], float)


def baseline_sums(values, own_metrics, keyed):
    """The `interval_sums` of `baseline_vectors` ``(values, own_metrics)``
    under ``keyed``: the differences with the flat map with its first
    `MARK_RESAMPLES` replicates only."""
    shown, marks = baseline_vectors(values, own_metrics)
    return interval_sums(shown, keyed) | interval_sums(
        marks, keyed.first(MARK_RESAMPLES)
    )


@dataclasses.dataclass(frozen=True)
class Baselines:
    """The baselines section's result (`baseline_results`).

    Attributes:
        rows: The baselines' rows (``report.json``'s ``baselines``): ``id``,
            ``label``, ``definition``, ``summary`` with the ``all`` subset,
            as explanation rows have; empty without masks.
        per_image: Baseline id -> metric -> per-image values (``per_image.
            baselines``), or ``None`` without masks.
        vs_flat: Explanation id -> metric -> `metrics.paired_difference`
            of the explanation minus the flat map on the same images
            (`MARK_RESAMPLES` resamples).
        at_chance: Explanation id -> the foreground metrics whose
            difference's interval does not lie above 0.
    """

    rows: list
    per_image: dict | None = None
    vs_flat: dict = dataclasses.field(default_factory=dict)
    at_chance: dict = dataclasses.field(default_factory=dict)

    def keys(self, data):
        """``report.json``'s keys: ``baselines``; with masks also
        ``per_image`` and ``explanations`` of ``data`` (the models
        section's) with the baselines' values and marks added."""
        keys = {"baselines": self.rows}
        if self.per_image is None:
            return keys
        keys["per_image"] = {**data["per_image"], "baselines": self.per_image}
        keys["explanations"] = [
            {
                **row,
                "vs_flat": self.vs_flat[row["id"]],
                "at_chance": self.at_chance[row["id"]],
            }
            for row in data["explanations"]
        ]
        return keys


def _baseline_rows(values, sums):
    return [
        {
            "id": key,
            "label": label,
            "definition": definition,
            "summary": {
                "all": {
                    name: metrics.summarize(
                        row, bootstrap=sums[("baseline", key, name)]
                    )
                    for name, row in values[key].items()
                }
            },
        }
        for key, (label, definition) in BASELINES.items()
    ]


def _vs_flat(row, own, values, sums):
    return {
        name: metrics.paired_difference(
            _as_array(own[name]),
            flat,
            bootstrap=sums[("vs_flat", row["id"], name)],
        )
        for name, flat in values["flat"].items()
        if name in own
    }


def baseline_results(
    data, masks=None, *, seed=0, values=None, keyed=None, sums=None
):
    """The baselines section's result (`Baselines`), from the models
    section's numbers ``data`` (read only).

    Args:
        data: The report's numbers from `explain_attn.report.summaries`.
        masks: ``(N, H, W)`` bool test masks, or ``None``.
        seed: Seed of the bootstrap intervals.
        values: The baselines' per-image values already computed
            (`BaselineValues` result), in place of ``masks``.
        keyed: The report's `metrics.PoissonBootstrap` of the test images
            (drawn from ``seed`` when ``None``).
        sums: The `baseline_sums` (added up from shards), or ``None`` to
            compute them here with ``keyed``.
    """
    if values is None and masks is not None:
        values = baseline_values(masks)
    if values is None:
        return Baselines([])
    if sums is None:
        if keyed is None:
            keyed = metrics.PoissonBootstrap(
                len(next(iter(values["flat"].values()))),
                num_resamples=data["bootstrap_resamples"],
                seed=seed,
            )
        sums = baseline_sums(values, data["per_image"]["metrics"], keyed)
    per_image = data["per_image"]["metrics"]
    vs_flat = {
        row["id"]: _vs_flat(row, per_image[row["id"]], values, sums)
        for row in data["explanations"]
    }
    return Baselines(
        _baseline_rows(values, sums),
        {
            key: {name: row.tolist() for name, row in rows.items()}
            for key, rows in values.items()
        },
        vs_flat,
        {
            key: [name for name, d in rows.items() if not d["ci_low"] > 0]
            for key, rows in vs_flat.items()
        },
    )


def baselines_section(data, masks=None, **options):
    """Adds the baselines to a plain dict of the report's numbers, in
    place (`baseline_results`, then its `Baselines.keys`); the report
    itself keeps the result in its description."""
    data.update(baseline_results(data, masks, **options).keys(data))


class BaselinesSection(Section):
    """The explanations' tables: the baselines (flat map, centre prior)
    beside the explanations (`baselines_section`), their distributions."""

    name = "baselines"
    partial = "_explanations.html"

    def contributors(self, run):
        return {"baselines": BaselineValues()}

    def compute(self, run, observed, data):
        return baseline_results(
            data,
            values=observed["baselines"],
            seed=run.seed,
            keyed=run.keyed,
            sums=run.sums,
        )

    def keys(self, result, data):
        # Its per-image values and marks join the models section's rows.
        return result.keys(data)

    def context(self, report):
        rows = report.data["explanations"]
        return {
            "metric_names": [
                name
                for name in METRIC_DEFINITIONS
                if any(name in row["summary"]["all"] for row in rows)
            ],
            "distributions": report.figures["baselines"]["distributions"],
        }

    def figures(self, results, attachments, data):
        series, labels = _distribution_series(data)
        drawing = Drawing(figures.metric_distributions, (series, labels))
        return {"distributions": drawing}


def _distribution_series(data):
    """`figures.metric_distributions`' arguments: the box plots of every
    explanation and, where there are masks, of the baselines (flat map,
    centre prior)."""
    labels = {row["id"]: row["label"] for row in data["explanations"]}
    series = dict(data["per_image"]["metrics"])
    for row in data.get("baselines", []):
        key = f"baseline:{row['id']}"
        labels[key] = row["label"]
        series[key] = data["per_image"]["baselines"][row["id"]]
    return series, labels
