"""The report's first screen: where the models look, and the headline numbers.

People open an attention report to see where the model looks, so the page
opens on a strip of gallery images (the first ones the gallery chose, in
the order it chose them: highest and lowest mass in mask, largest
disagreement, misclassified) with each attention layer's map and the
reference CAM overlaid side by side and the mask outlined, then the
headline numbers as two compact figures: each model's test accuracy, and
each map's mass in mask against the flat and centre baselines, all with
their bootstrap intervals. Both fit a 1280 x 800 screen under the title.
"""

import dataclasses
import math

import numpy as np
from matplotlib.figure import Figure

from explain_attn.explanations.methods import get_method
from explain_attn.overlays import mask_outline, overlay_rgb
from explain_attn.report.figures import to_data_uri
from explain_attn.report.section import Section

__all__ = ["FirstScreenSection", "FirstScreen", "first_screen"]

STRIP_PANELS = 8
"""Panels per row of the strip: two examples of image + 2 layers + CAM."""
STRIP_ROWS = 2
"""Rows of the strip; with `STRIP_PANELS` it stays under ~300 CSS px."""
PANEL_INCHES = 1.3
DPI = 100


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
    shown = _shown_explanations(report)
    examples = _strip_examples(report.gallery, len(shown))
    class_names = data["dataset"]["class_names"]
    labels = data["per_image"]["labels"]
    columns = ["image" + (" · mask" if data["dataset"]["has_masks"] else "")]
    columns += [_column_title(e) for e in shown]
    return FirstScreen(
        strip=_strip_figure(examples, shown, columns) if examples else None,
        columns=columns,
        examples=[
            {
                "index": example["index"],
                "true": class_names[labels[example["index"]]],
                "reason": example["reasons"][0],
            }
            for example in examples
        ],
        headline=_headline_figure(data),
        numbers=headline_numbers(data),
    )


def _shown_explanations(report):
    """Every attention map, then the reference (the baseline's CAM)."""
    if not report.gallery:
        return []
    explanations = list(report.gallery[0]["overlays"])
    reference = report.data["reference"]["id"]
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


def _strip_figure(examples, shown, columns):
    """Examples side by side, each as its image then every map overlaid."""
    per_example = len(shown) + 1
    per_row = max(1, STRIP_PANELS // per_example)
    rows = math.ceil(len(examples) / per_row)
    panels = per_row * per_example
    figure = Figure(
        figsize=(PANEL_INCHES * panels, (PANEL_INCHES + 0.3) * rows)
    )
    axes = figure.subplots(rows, panels, squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    for number, example in enumerate(examples):
        row, start = divmod(number, per_row)
        cells = axes[row, start * per_example : (start + 1) * per_example]
        image = mask_outline(example["image"], example["mask"])
        cells[0].imshow(image, interpolation="nearest")
        cells[0].set_title(f"#{example['index']}", fontsize=8)
        for cell, explanation in zip(cells[1:], shown, strict=True):
            values = overlay_rgb(image, example["overlays"][explanation])
            cell.imshow(values, interpolation="bilinear")
        for cell, title in zip(cells[1:], columns[1:], strict=True):
            cell.set_title(_short(title), fontsize=8)
    figure.subplots_adjust(
        left=0.005, right=0.995, top=0.9, bottom=0.01, wspace=0.04, hspace=0.3
    )
    return to_data_uri(figure, dpi=DPI)


def _short(text, limit=22):
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def _headline_figure(data):
    """Accuracy with intervals beside mass in mask with intervals, the
    flat and centre baselines as lines."""
    accuracy = [
        (row["name"], row["accuracy"]["accuracy"], row["accuracy"])
        for row in data["models"]
    ]
    mass = _mass_rows(data)
    rows = max(len(accuracy), len(mass) - 2 if mass else 0)
    axes_count = 2 if mass else 1
    figure = Figure(figsize=(11, 0.55 + 0.27 * rows))
    ratios = {"width_ratios": [1, 1.6][:axes_count]}
    axes = figure.subplots(1, axes_count, squeeze=False, gridspec_kw=ratios)
    _interval_axis(axes[0][0], accuracy, "test accuracy", percent=True)
    if mass:
        _mass_axis(axes[0][1], mass)
    margins = {"left": 0.1, "right": 0.99, "top": 0.8, "bottom": 0.2}
    figure.subplots_adjust(wspace=0.55, **margins)
    return to_data_uri(figure, dpi=DPI)


def _mass_axis(axis, mass):
    """Mass in mask of each map, the last two rows (the flat and centre
    baselines) as vertical lines."""
    maps = [(label, s["mean"], s) for label, s in mass[:-2] if s]
    _interval_axis(axis, maps, "mass in mask")
    for (label, summary), style in zip(mass[-2:], ("--", ":"), strict=True):
        line = f"{label} {summary['mean']:.2f}"
        axis.axvline(summary["mean"], color="gray", linestyle=style, label=line)
    axis.legend(fontsize=7, loc="lower right", frameon=False)


def _interval_axis(axis, rows, title, *, percent=False):
    """One dot per row at its value, its interval as a bar, the value
    written at the right."""
    scale = 100.0 if percent else 1.0
    positions = np.arange(len(rows))
    for position, (_, value, summary) in zip(positions, rows, strict=True):
        if value is None or not math.isfinite(value):
            continue
        _interval_dot(axis, position, scale * value, summary, scale)
        text = f"{scale * value:.1f}%" if percent else f"{value:.2f}"
        _annotate(axis, text, (scale * summary["ci_high"], position))
    axis.set_yticks(positions, [_short(label, 30) for label, *_ in rows])
    axis.tick_params(labelsize=7)
    axis.set_ylim(len(rows) - 0.5, -0.5)
    axis.set_xlim(0, scale * 1.1)
    axis.set_title(title, fontsize=9)
    axis.grid(axis="x", alpha=0.3)


def _interval_dot(axis, position, value, summary, scale):
    """A dot at ``value`` with the summary's interval (times ``scale``)."""
    low, high = scale * summary["ci_low"], scale * summary["ci_high"]
    error = [[value - low], [high - value]]
    style = {"fmt": "o", "color": "#0969da", "markersize": 4, "capsize": 2}
    axis.errorbar(value, position, xerr=error, **style)


def _annotate(axis, text, point):
    """``text`` a little right of ``point``, small."""
    offset = {"xytext": (4, -3), "textcoords": "offset points"}
    axis.annotate(text, point, fontsize=7, **offset)


class FirstScreenSection(Section):
    """The answer on one screen (`first_screen`): page only."""

    name = "first_screen"
    partial = "_first_screen.html"

    def context(self, report):
        return {"first_screen": first_screen(report)}
