"""Figures of the report's Faithfulness section (matplotlib, no pyplot).

Each function takes the section's JSON-ready dict (see
`explain_attn.faithfulness.faithfulness_section`) and returns a PNG
``data:`` URI, or ``None`` when there is nothing to draw.
"""

import numpy as np
from matplotlib.figure import Figure

from explain_attn.report.figures import set_layer_ticks, to_data_uri

__all__ = [
    "deletion_insertion_figure",
    "randomization_figure",
]


def randomization_figure(section):
    """Median Spearman with the original map after each cascade step.

    One panel per model; the x axis names the layer re-initialised at each
    step (step 0: the trained model), one line per map, and the failure
    threshold as a dotted line.
    """
    results = section.get("randomization") or []
    if not results:
        return None
    figure = Figure(figsize=(10, 3.4 * len(results)))
    axes = figure.subplots(len(results), 1, squeeze=False)[:, 0]
    for axis, result in zip(axes, results, strict=True):
        layers = ["trained", *result["cascade"]["layers"]]
        steps = np.arange(len(layers))
        for name, values in result["cascade"]["spearman_median"].items():
            values = np.array(
                [np.nan if v is None else v for v in values], float
            )
            axis.plot(
                steps, values, marker="o", label=result["short_labels"][name]
            )
        axis.axhline(result["threshold"], color="gray", linestyle=":")
        set_layer_ticks(axis, layers)
        axis.set_ylim(-1.05, 1.05)
        axis.set_ylabel("median Spearman", fontsize=8)
        axis.set_title(
            f"{result['name']}: layers re-initialised from the output down",
            fontsize=9,
        )
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7, loc="lower left")
    figure.tight_layout()
    return to_data_uri(figure)


def deletion_insertion_figure(section):
    """Mean probability of the explained class along the deletion and
    insertion curves.

    One row per model, deletion left and insertion right; each explanation
    a line, the random order dashed.
    """
    curves = section.get("deletion_insertion") or {}
    rows = curves.get("rows") or []
    if not rows:
        return None
    fractions = np.asarray(curves["fractions"], float)
    model_keys = list(dict.fromkeys(row["model"] for row in rows))
    figure = Figure(figsize=(10, 3 * len(model_keys)))
    axes = figure.subplots(len(model_keys), 2, squeeze=False)
    for (deletion_axis, insertion_axis), key in zip(
        axes, model_keys, strict=True
    ):
        for row in rows:
            if row["model"] != key:
                continue
            style = "--" if row["random"] else "-"
            label = row["short_label"]
            for axis, curve in (
                (deletion_axis, "deletion_curve"),
                (insertion_axis, "insertion_curve"),
            ):
                values = np.array(
                    [np.nan if v is None else v for v in row[curve]], float
                )
                axis.plot(fractions, values, style, marker=".", label=label)
        model_name = next(r["model_name"] for r in rows if r["model"] == key)
        for axis, title in (
            (deletion_axis, "deletion (pixels blurred, most important first)"),
            (insertion_axis, "insertion (pixels restored on the blur)"),
        ):
            axis.set_title(f"{model_name}: {title}", fontsize=9)
            axis.set_xlabel("fraction of pixels", fontsize=8)
            axis.set_ylabel("explained-class probability", fontsize=8)
            axis.set_ylim(0, 1)
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    figure.tight_layout()
    return to_data_uri(figure)
