"""Two reports side by side, and the gates of ``explain-attn compare``.

Quantities are named ``<model key>.accuracy`` (e.g. ``attention.accuracy``)
and ``<explanation id>.<metric>`` (e.g.
``attention:block2_attention.mass_in_mask``); a gate may give any unique
suffix after a ``.`` or ``:`` (``block2_attention.mass_in_mask``). Only
quantities present in both reports are compared.

Differences are ``B - A`` (the second report minus the first):

- **paired** when both reports were computed on the same test images (equal
  data fingerprints): the mean per-image difference with its percentile
  bootstrap interval and Wilcoxon p-value (`metrics.paired_difference`);
- **unpaired** otherwise: the difference of means with a normal-
  approximation (Welch) 95 % interval, ``±1.96 sqrt(s_A^2/n_A + s_B^2/n_B)``,
  and no p-value.

Gates: ``--fail-under NAME=VALUE`` fails when B's value is below VALUE;
``--fail-if-worse NAME`` fails when B is worse than A beyond noise: the
interval of ``B - A`` lies below 0 (quantities where higher is better only:
accuracy, foreground metrics, agreement).
"""

import difflib
import json
import math
from pathlib import Path

import numpy as np

from explain_attn import metrics
from explain_attn.report.schema import check_report

__all__ = [
    "HIGHER_IS_BETTER",
    "check_gates",
    "compare_reports",
    "load_report",
    "parse_threshold",
]

HIGHER_IS_BETTER = {
    "accuracy",
    *metrics.FOREGROUND_METRICS,
    "agreement spearman",
    "agreement top_fraction_overlap",
}
"""Quantities (by their last part) for which a lower value is worse."""
_Z = 1.959963984540054  # The standard normal's 97.5 % quantile.


def load_report(path):
    """Reads and validates a ``report.json``; `ValueError` when it is not."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"Report not found: {str(path)!r}. Give a report.json."
        )
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"{str(path)!r} is not JSON ({error}). Give the report.json "
            "written beside a report's .html."
        ) from None
    check_report(document, repr(str(path)))
    return document


def _array(values):
    return np.array([np.nan if v is None else v for v in values], float)


def per_image_quantities(report):
    """Quantity name -> ``(N,)`` per-image values (NaN where undefined)."""
    per_image = report["per_image"]
    labels = np.asarray(per_image["labels"])
    quantities = {
        f"{key}.accuracy": (np.asarray(values) == labels).astype(float)
        for key, values in per_image["predictions"].items()
    }
    for explanation, table in per_image["metrics"].items():
        for metric, values in table.items():
            quantities[f"{explanation}.{metric}"] = _array(values)
    for explanation, table in per_image["agreement_with_reference"].items():
        for metric, values in table.items():
            quantities[f"{explanation}.agreement {metric}"] = _array(values)
    return quantities


def _unpaired(values_a, values_b):
    a, b = values_a[~np.isnan(values_a)], values_b[~np.isnan(values_b)]
    result = {
        "mean_difference": math.nan,
        "ci_low": math.nan,
        "ci_high": math.nan,
        "p_value": math.nan,
    }
    if len(a) and len(b):
        result["mean_difference"] = float(b.mean() - a.mean())
    if len(a) >= 2 and len(b) >= 2:
        spread = _Z * math.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        result["ci_low"] = result["mean_difference"] - spread
        result["ci_high"] = result["mean_difference"] + spread
    return result


def _mean(values):
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if len(finite) else math.nan


def compare_reports(report_a, report_b, *, seed=0, num_resamples=2_000):
    """The quantities of two reports side by side, with differences.

    Returns:
        A JSON-ready dict: ``paired`` (bool), ``reason`` (why paired or
        not), ``datasets`` (the two dataset sections) and ``rows``: one per
        shared quantity, with ``name``, ``a``, ``b`` (means),
        ``difference`` (``mean_difference``, ``ci_low``, ``ci_high``,
        ``p_value`` of B - A) and ``higher_is_better``.
    """
    fingerprint_a = report_a["dataset"]["fingerprint"]
    fingerprint_b = report_b["dataset"]["fingerprint"]
    paired = fingerprint_a == fingerprint_b
    quantities_a = per_image_quantities(report_a)
    quantities_b = per_image_quantities(report_b)
    rows = []
    for name, values_a in quantities_a.items():
        if name not in quantities_b:
            continue
        values_b = quantities_b[name]
        if paired and len(values_a) == len(values_b):
            difference = metrics.paired_difference(
                values_b, values_a, seed=seed, num_resamples=num_resamples
            )
        else:
            difference = _unpaired(values_a, values_b)
        rows.append(
            {
                "name": name,
                "a": _mean(values_a),
                "b": _mean(values_b),
                "difference": difference,
                "higher_is_better": name.rsplit(".", 1)[-1] in HIGHER_IS_BETTER,
            }
        )
    return {
        "paired": paired,
        "reason": (
            "same test images (equal data fingerprints): paired differences"
            if paired
            else "different test images (data fingerprints differ): "
            "unpaired differences of means"
        ),
        "datasets": [report_a["dataset"], report_b["dataset"]],
        "rows": rows,
    }


def resolve_name(name, rows):
    """The row a gate's quantity name means (exact, or a unique suffix)."""
    names = [row["name"] for row in rows]
    if name in names:
        return rows[names.index(name)]
    matches = [
        row for row in rows if row["name"].endswith(("." + name, ":" + name))
    ]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(
            f"{name!r} matches several quantities: "
            f"{', '.join(m['name'] for m in matches)}. Give one of them."
        )
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
    hint = f" Closest: {', '.join(close)}." if close else ""
    raise ValueError(
        f"Unknown quantity {name!r}: it is not in both reports.{hint} "
        "Names are <model>.accuracy or <explanation id>.<metric>."
    )


def parse_threshold(text):
    """``"NAME=VALUE"`` -> ``(name, float)``; `ValueError` when malformed."""
    name, separator, value = text.rpartition("=")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not separator or not name or not math.isfinite(number):
        raise ValueError(
            f"--fail-under expects NAME=VALUE with a finite number, e.g. "
            f"attention.accuracy=0.9. Received: {text!r}"
        )
    return name, number


def check_gates(comparison, *, fail_under=(), fail_if_worse=()):
    """Checks the gates; returns one message per failed gate.

    Args:
        comparison: From `compare_reports`.
        fail_under: ``(name, value)`` pairs: B's mean must be >= value.
        fail_if_worse: Names: the interval of B - A must not lie below 0.

    Raises:
        ValueError: For an unknown or ambiguous name, or
            ``fail_if_worse`` on a quantity without a better direction.
    """
    rows = comparison["rows"]
    resolved_under = [(resolve_name(n, rows), v) for n, v in fail_under]
    resolved_worse = [resolve_name(n, rows) for n in fail_if_worse]
    for row in resolved_worse:
        if not row["higher_is_better"]:
            raise ValueError(
                f"--fail-if-worse {row['name']}: this quantity has no "
                "better direction. Use --fail-under NAME=VALUE instead."
            )
    failed = []
    for row, value in resolved_under:
        if not row["b"] >= value:
            failed.append(
                f"--fail-under {row['name']}={value:g}: B is {row['b']:.4f}"
            )
    for row in resolved_worse:
        difference = row["difference"]
        if difference["ci_high"] < 0:
            failed.append(
                f"--fail-if-worse {row['name']}: B - A = "
                f"{difference['mean_difference']:+.4f} "
                f"[{difference['ci_low']:+.4f}, {difference['ci_high']:+.4f}]"
            )
    return failed
