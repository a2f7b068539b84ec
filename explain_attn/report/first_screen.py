"""The report's first screen: where the models look, and the headline numbers.

People open an attention report to see where the model looks, so the page
opens on a strip of gallery images (the first ones the gallery chose, in
the order it chose them: highest and lowest mass in mask, largest
disagreement, misclassified) with each attention layer's map and the
reference CAM overlaid side by side and the mask outlined, then the
headline numbers as two compact figures: each model's test accuracy, and
each map's mass in mask against the flat and centre baselines, all with
their bootstrap intervals. Both fit a 1280 x 800 screen under the title.
The figures are drawn by `explain_attn.report.first_screen_figures`, once
the gallery has chosen its examples.
"""

import dataclasses
import math

from explain_attn.explanations.methods import get_method
from explain_attn.report.drawing import Drawing
from explain_attn.report.first_screen_figures import (
    STRIP_PANELS,
    STRIP_ROWS,
    headline_figure,
    strip_figure,
)
from explain_attn.report.section import Section

__all__ = ["FirstScreenSection", "FirstScreen", "first_screen"]


@dataclasses.dataclass(frozen=True)
class FirstScreen:
    """What the first screen shows.

    Attributes:
        strip: PNG ``data:`` URI of the strip, or ``None`` without examples.
        columns: The strip's column titles: the image, then each map.
        examples: One dict per example shown: ``index``, ``true`` and
            ``reason``.
        headline: PNG ``data:`` URI of the headline figures.
        numbers: The headline numbers as text: ``(what, value)`` pairs, for
            the figure's caption (and screen readers).
    """

    strip: str | None
    columns: list
    examples: list
    headline: str
    numbers: list


def first_screen(report):
    """The first screen of ``report`` (a `explain_attn.report.Report`)."""
    data = report.data
    _, examples, columns = _strip(report.gallery, data)
    class_names = data["dataset"]["class_names"]
    labels = data["per_image"]["labels"]
    figures = report.figures["first_screen"]
    return FirstScreen(
        strip=figures.get("strip"),
        columns=columns,
        examples=[
            {
                "index": example["index"],
                "true": class_names[labels[example["index"]]],
                "reason": example["reasons"][0],
            }
            for example in examples
        ],
        headline=figures["headline"],
        numbers=headline_numbers(data),
    )


def _strip(gallery, data):
    """``(shown explanations, examples, column titles)`` of the strip."""
    shown = _shown_explanations(gallery, data)
    examples = _strip_examples(gallery, len(shown))
    columns = ["image" + (" · mask" if data["dataset"]["has_masks"] else "")]
    columns += [_column_title(e) for e in shown]
    return shown, examples, columns


def _shown_explanations(gallery, data):
    """Every attention map, then the reference (the baseline's CAM)."""
    if not gallery:
        return []
    explanations = list(gallery[0]["overlays"])
    reference = data["reference"]["id"]
    attention = [e for e in explanations if e.is_attention]
    return attention + [e for e in explanations if e.key == reference]


def _column_title(explanation):
    if explanation.is_attention:
        return explanation.layer.rsplit("/", 1)[-1]
    return f"{explanation.model_key} {get_method(explanation.method).title}"


def _strip_examples(gallery, maps):
    """The first examples in the gallery's order of choice that fit
    `STRIP_ROWS` rows."""
    per_row = max(1, STRIP_PANELS // (maps + 1))
    ordered = sorted(gallery, key=lambda example: example.get("rank", 0))
    return ordered[: per_row * STRIP_ROWS]


def headline_numbers(data):
    """The headline numbers as ``(what, text)`` pairs.

    Each model's test accuracy, then each attention map's and the
    reference's mean mass in mask, then the flat and centre baselines'
    (only with masks); every value with its 95 % bootstrap interval.
    """
    numbers = [
        (f"{row['name']} accuracy", _percent(row["accuracy"]))
        for row in data["models"]
    ]
    for label, summary in _mass_rows(data):
        numbers.append((f"mass in mask, {label}", _interval(summary)))
    return numbers


def _mass_rows(data):
    """``[(label, summary)]`` of mass in mask: the maps, then baselines."""
    reference = data["reference"]["id"]
    rows = [
        (_map_name(row, reference), row["summary"]["all"]["mass_in_mask"])
        for row in data["explanations"]
        if (get_method(row["method"]).is_attention or row["id"] == reference)
        and "mass_in_mask" in row["summary"]["all"]
    ]
    if not rows:
        return []
    rows += [
        (row["label"], row["summary"]["all"]["mass_in_mask"])
        for row in data.get("baselines", [])
        if "mass_in_mask" in row["summary"]["all"]
    ]
    return rows


def _map_name(row, reference):
    """An attention map by its layer; the reference by model and method."""
    if row["id"] == reference:
        return f"{row['model']} {row['short_label']}"
    return row["short_label"]


def _percent(summary):
    if summary.get("accuracy") is None:
        return "–"
    return (
        f"{100 * summary['accuracy']:.1f}% "
        f"[{100 * summary['ci_low']:.1f}, {100 * summary['ci_high']:.1f}]"
    )


def _interval(summary):
    mean = summary.get("mean")
    if mean is None or not math.isfinite(mean):
        return "–"
    return f"{mean:.3f} [{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


class FirstScreenSection(Section):
    """The answer on one screen (`first_screen`): page only, drawn once the
    gallery has chosen its examples (phase ``reading``)."""

    name = "first_screen"
    partial = "_first_screen.html"
    phase = "reading"

    def figures(self, results, attachments, data):
        shown, examples, columns = _strip(attachments.get("gallery", []), data)
        accuracy = [
            (row["name"], row["accuracy"]["accuracy"], row["accuracy"])
            for row in data["models"]
        ]
        drawings = {
            "headline": Drawing(headline_figure, (accuracy, _mass_rows(data)))
        }
        if examples:
            panels = [
                (
                    example["index"],
                    example["image"],
                    example["mask"],
                    [example["overlays"][e] for e in shown],
                )
                for example in examples
            ]
            drawings["strip"] = Drawing(strip_figure, (panels, columns))
        return drawings

    def context(self, report):
        return {"first_screen": first_screen(report)}
