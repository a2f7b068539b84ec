"""Findings: the report's answers in a few sentences, from its numbers.

Each finding is ``{"text": sentence, "section": id}``, where ``section`` is
the id of the report section that holds the numbers. Every number in a
sentence is read from ``data`` (with its 95 % interval); the words follow
from the intervals only:

- accuracy: attention helps / hurts when the paired interval of the
  difference excludes 0, else "no measurable difference";
- where a layer looks: "at chance" when its mass in mask is not above the
  flat map's (see `explain_attn.report.baselines`), "above the centre
  prior" when its interval's low end exceeds the prior's mean, and more or
  less than the reference CAM when the paired interval excludes 0;
- interventions: the attention is used when replacing the map lowers
  accuracy (interval below 0) in at least one intervention;
- randomisation: which maps pass and fail the cascade check;
- the weakest class of each model by accuracy.
"""

import math

from explain_attn.explanations.methods import get_method
from explain_attn.report.section import Section

__all__ = ["FindingsSection", "findings"]


def _finite(value):
    return value is not None and math.isfinite(value)


def _interval(summary, scale=1.0, digits=3, key="mean"):
    centre = summary.get(key)
    if not _finite(centre):
        return "undefined"
    low, high = summary.get("ci_low"), summary.get("ci_high")
    text = f"{scale * centre:.{digits}f}"
    if _finite(low) and _finite(high):
        text += f" [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"
    return text


def _sign(difference):
    """+1 when the interval lies above 0, -1 below, 0 when it includes 0."""
    low, high = difference.get("ci_low"), difference.get("ci_high")
    if _finite(low) and low > 0:
        return 1
    if _finite(high) and high < 0:
        return -1
    return 0


def _accuracy_findings(data):
    models = {row["key"]: row for row in data["models"]}
    found = []
    for comparison in data["comparisons"]:
        attention = models[comparison["attention"]]
        baseline = models[comparison["reference"]]
        verdict = {
            1: "attention is more accurate",
            -1: "attention is less accurate",
            0: "no measurable difference in accuracy",
        }[_sign(comparison)]
        found.append(
            f"Accuracy: {attention['name']} "
            f"{_interval(attention['accuracy'], 100, 1, 'accuracy')}% vs "
            f"{baseline['name']} "
            f"{_interval(baseline['accuracy'], 100, 1, 'accuracy')}%; "
            f"paired difference "
            f"{_interval(comparison, 100, 1, 'mean_difference')} points on "
            f"{comparison['n']:,} images: {verdict}."
        )
    return [{"text": text, "section": "models"} for text in found]


def _chance_words(row, baselines, metric):
    summary = row["summary"]["all"][metric]
    if metric in row.get("at_chance", []):
        return "at chance (not above the flat map)"
    centre = baselines.get("centre", {}).get(metric, {}).get("mean")
    if _finite(centre) and _finite(summary["ci_low"]):
        if summary["ci_low"] > centre:
            return "above the flat map and the centre prior"
        return "above the flat map but not above the centre prior"
    return "above the flat map"


def _reference_words(row, reference_label):
    paired = row.get("mass_in_mask_vs_reference")
    if not paired:
        return ""
    words = {
        1: f"more mass in mask than {reference_label}",
        -1: f"less mass in mask than {reference_label}",
        0: f"not measurably different from {reference_label}",
    }[_sign(paired)]
    return (
        f"; {words} (paired difference "
        f"{_interval(paired, key='mean_difference')})"
    )


def _where_findings(data):
    baselines = {b["id"]: b["summary"]["all"] for b in data["baselines"]}
    reference_label = data["reference"]["label"]
    found = []
    for row in data["explanations"]:
        if not get_method(row["method"]).is_attention:
            continue
        summary = row["summary"]["all"]
        if "mass_in_mask" in summary and baselines:
            flat = baselines["flat"]["mass_in_mask"]["mean"]
            centre = baselines["centre"]["mass_in_mask"]["mean"]
            text = (
                f"Where {row['label']} looks: mass in mask "
                f"{_interval(summary['mass_in_mask'])} against "
                f"{flat:.3f} for a flat map and {centre:.3f} for the centre "
                f"prior: {_chance_words(row, baselines, 'mass_in_mask')}"
                f"{_reference_words(row, reference_label)}."
            )
            if "roc_auc" in summary:
                verdict = (
                    "at chance"
                    if "roc_auc" in row.get("at_chance", [])
                    else "above chance"
                )
                text += (
                    f" ROC AUC {_interval(summary['roc_auc'])}: {verdict} "
                    "(0.5)."
                )
        else:
            spearman = row["agreement_with_reference"]["spearman"]
            text = (
                f"Where {row['label']} looks: Spearman agreement with "
                f"{reference_label} {_interval(spearman)} (no masks, so no "
                "foreground metric)."
            )
        found.append({"text": text, "section": "explanations"})
    return found


def _intervention_findings(section):
    found = []
    for result in section.get("interventions", []):
        for layer in result["layers"]:
            changes = {
                name: values["accuracy_change"]
                for name, values in layer["interventions"].items()
                if name != "mask"
            }
            if not changes:
                continue
            name, worst = min(
                changes.items(),
                key=lambda item: (
                    item[1]["mean_difference"]
                    if _finite(item[1]["mean_difference"])
                    else math.inf
                ),
            )
            used = any(_sign(change) < 0 for change in changes.values())
            verdict = (
                "the model uses this attention"
                if used
                else "no measurable use of this attention"
            )
            found.append(
                f"Is {result['name']} · {layer['layer']} used? Replacing its "
                f"map ({name}) changes accuracy by "
                f"{_interval(worst, 100, 1, 'mean_difference')} points: "
                f"{verdict}."
            )
    return found


def _randomization_findings(section):
    passed, failed = [], []
    for result in section.get("randomization", []):
        for check in result["checks"]:
            (passed if check["passed"] else failed).append(check["label"])
    if not passed and not failed:
        return []
    text = (
        f"Sanity (randomisation): {len(passed)} of "
        f"{len(passed) + len(failed)} maps change when the model's weights "
        "are re-initialised"
    )
    if failed:
        text += "; failed: " + ", ".join(failed)
    return [text + "."]


def _class_findings(data):
    per_class = data.get("per_class")
    if not per_class or len(per_class["class_names"]) < 2:
        return []
    parts = []
    for model in data["models"]:
        rows = per_class["accuracy"][model["key"]]
        finite = [
            (row["accuracy"], index)
            for index, row in enumerate(rows)
            if _finite(row["accuracy"])
        ]
        if not finite:
            continue
        _, index = min(finite)
        parts.append(
            f"{model['name']}: {per_class['class_names'][index]!r} "
            f"{_interval(rows[index], 100, 1, 'accuracy')}%"
        )
    if not parts:
        return []
    return [
        {
            "text": "Weakest class by accuracy: " + "; ".join(parts) + ".",
            "section": "per-class",
        }
    ]


def findings(data):
    """The report's findings, in reading order.

    Args:
        data: The report's numbers (``models``, ``comparisons``,
            ``explanations``, ``reference``, ``baselines``; optionally
            ``faithfulness`` and ``per_class``).

    Returns:
        A list of ``{"text", "section"}`` dicts.
    """
    found = _accuracy_findings(data) + _where_findings(data)
    section = data.get("faithfulness")
    if section:
        found += [
            {"text": text, "section": "faithfulness"}
            for text in _intervention_findings(section)
            + _randomization_findings(section)
        ]
    return found + _class_findings(data)


class FindingsSection(Section):
    """What the numbers say, in sentences (`findings`), from every other
    section."""

    name = "findings"
    partial = "_findings.html"
    phase = "last"

    def compute(self, run, observed, data):
        return findings(data)
