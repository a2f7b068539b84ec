"""The first screen's figures (`explain_attn.report.first_screen`): the
strip of examples with their maps, and the headline numbers with their
intervals. Drawn from arrays and numbers, without TensorFlow
(`explain_attn.report.drawing`).
"""

import math

import numpy as np
from matplotlib.figure import Figure

from explain_attn.overlays import mask_outline, overlay_rgb
from explain_attn.report.figures import to_data_uri

__all__ = ["STRIP_PANELS", "STRIP_ROWS", "headline_figure", "strip_figure"]

STRIP_PANELS = 8
"""Panels per row of the strip: two examples of image + 2 layers + CAM."""
STRIP_ROWS = 2
"""Rows of the strip; with `STRIP_PANELS` it stays under ~300 CSS px."""
PANEL_INCHES = 1.3
DPI = 100


def strip_figure(examples, columns):
    """Examples side by side, each as its image then every map overlaid.

    Args:
        examples: ``(index, image, mask, maps)`` per example: its test
            index, ``(H, W, C)`` image, ``(H, W)`` mask or ``None``, and
            one ``(H, W)`` map per column after the first.
        columns: The column titles: the image's, then each map's.
    """
    per_example = len(columns)
    per_row = max(1, STRIP_PANELS // per_example)
    rows = math.ceil(len(examples) / per_row)
    panels = per_row * per_example
    figure = Figure(
        figsize=(PANEL_INCHES * panels, (PANEL_INCHES + 0.3) * rows)
    )
    axes = figure.subplots(rows, panels, squeeze=False)
    for axis in axes.ravel():
        axis.set_axis_off()
    for number, (index, image, mask, maps) in enumerate(examples):
        row, start = divmod(number, per_row)
        cells = axes[row, start * per_example : (start + 1) * per_example]
        image = mask_outline(image, mask)
        cells[0].imshow(image, interpolation="nearest")
        cells[0].set_title(f"#{index}", fontsize=8)
        for cell, values in zip(cells[1:], maps, strict=True):
            cell.imshow(overlay_rgb(image, values), interpolation="bilinear")
        for cell, title in zip(cells[1:], columns[1:], strict=True):
            cell.set_title(short(title), fontsize=8)
    figure.subplots_adjust(
        left=0.005, right=0.995, top=0.9, bottom=0.01, wspace=0.04, hspace=0.3
    )
    return to_data_uri(figure, dpi=DPI)


def short(text, limit=22):
    """``text`` cut to ``limit`` characters, an ellipsis last."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def headline_figure(accuracy, mass):
    """Accuracy with intervals beside mass in mask with intervals, the
    flat and centre baselines as lines.

    Args:
        accuracy: ``(model name, accuracy, summary)`` per model.
        mass: ``(label, summary)`` of mass in mask per map, then the flat
            and centre baselines; empty without masks.
    """
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
    axis.set_yticks(positions, [short(label, 30) for label, *_ in rows])
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
