"""The last stage: a `Report` as one self-contained HTML page.

One jinja2 environment (autoescape, undefined is an error) renders every
page; the figures come from `explain_attn.report.figures`.
"""

import functools
import math
from pathlib import Path

import jinja2

# The module, not its names (tests replace a figure function to interrupt
# the rendering), by its full name: ``from explain_attn.report import
# figures`` would import the package this module is part of, a cycle
# (tests/test_architecture.py).
import explain_attn.report.figures as figures
from explain_attn.explanations.methods import get_method
from explain_attn.metrics import FOREGROUND_METRICS, METRIC_DEFINITIONS
from explain_attn.models.saving import atomic_path
from explain_attn.report.channels import channel_figures
from explain_attn.report.faithfulness_figures import faithfulness_figures
from explain_attn.report.first_screen import first_screen
from explain_attn.report.per_class import PER_CLASS_RESAMPLES
from explain_attn.report.segmentation_render import segmentation_html
from explain_attn.report.training_record import training_figures

__all__ = [
    "FRAME_HEIGHT",
    "comparison_html",
    "render_html",
    "report_frame",
    "report_html",
    "template_directory",
    "template_environment",
]


def template_directory():
    """Returns the folder holding the HTML templates.

    An installed package carries them as ``explain_attn/templates``; an
    editable install or a source checkout has them in ``<repo>/templates``.
    """
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "templates", package.parent / "templates"):
        if (candidate / "base.html").is_file():
            return candidate
    raise FileNotFoundError(
        f"explain-attn's templates are missing: looked in {package} and its "
        "parent. Reinstall the package."
    )


@functools.cache
def template_environment():
    """Returns the shared environment: autoescape on, undefined is an error."""
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_directory()),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Compact JSON for the explorer's payload (``tojson`` escapes <, >, &
    # and ' so that it is safe inside a <script> element).
    environment.policies["json.dumps_kwargs"] = {
        "sort_keys": False,
        "separators": (",", ":"),
        "allow_nan": False,
    }
    environment.filters["number"] = _number
    environment.filters["interval"] = _interval
    environment.filters["percent_interval"] = _percent_interval
    return environment


def _number(value, digits=3):
    """Formats a number for the report; missing or NaN values show a dash."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _interval(summary, digits=3):
    """``mean [low, high]`` of a `summarize`-style dict."""
    centre = summary.get("mean", summary.get("accuracy"))
    if centre is None or not math.isfinite(centre):
        return "–"
    low, high = summary.get("ci_low"), summary.get("ci_high")
    if low is None or not math.isfinite(low):
        return _number(centre, digits)
    return (
        f"{_number(centre, digits)} [{_number(low, digits)}, "
        f"{_number(high, digits)}]"
    )


def _percent_interval(summary):
    accuracy = summary["accuracy"]
    if accuracy is None or not math.isfinite(accuracy):
        return "–"
    return (
        f"{100 * accuracy:.1f}% [{100 * summary['ci_low']:.1f}, "
        f"{100 * summary['ci_high']:.1f}]"
    )


def render_html(report, path):
    """Writes ``report`` as one self-contained HTML file, atomically.

    The page is rendered completely (see `report_html`) before the file is
    written, so an error or an interruption leaves no partial file and an
    existing one untouched.

    Figures are PNG ``data:`` URIs, CSS is inline, and nothing refers to
    another file or URL, so the file can be mailed. Every string that came
    from the user (class, file, layer and model names) is escaped by the
    template engine.

    Args:
        report: A `explain_attn.report.Report`.
        path: The ``.html`` file to write.
    """
    html = report_html(report)
    with atomic_path(path) as temporary:
        temporary.write_text(html, encoding="utf-8")


def _panel_names(explanation):
    """The method's title for class-activation maps, then the layer's last
    path component."""
    method = get_method(explanation.method)
    layer = explanation.layer.rsplit("/", 1)[-1]
    return (method.title, layer) if method.uses_class else (layer,)


def _gallery_entry(example, data, models):
    """What the template shows of one gallery example."""
    explanations = list(example["overlays"])
    per_image = data["per_image"]["metrics"]
    index = example["index"]
    class_names = data["dataset"]["class_names"]
    return {
        "figure": figures.example_figure(
            example["image"],
            example["mask"],
            [example["overlays"][e] for e in explanations],
            [
                figures.panel_title(number, e.model_key, *_panel_names(e))
                for number, e in enumerate(explanations, 1)
            ],
        ),
        "index": index,
        "true": class_names[data["per_image"]["labels"][index]],
        "predictions": [
            (models[key]["name"], class_names[value])
            for key, value in example["predictions"].items()
        ],
        "reasons": example["reasons"],
        "metrics": [
            (
                e.label,
                {
                    name: per_image[e.key][name][index]
                    for name in ("entropy", "mass_in_mask")
                    if name in per_image[e.key]
                },
            )
            for e in explanations
        ],
    }


def _distributions(data):
    """Box plots of every explanation and, where there are masks, of the
    baselines (flat map, centre prior)."""
    labels = {row["id"]: row["label"] for row in data["explanations"]}
    series = dict(data["per_image"]["metrics"])
    for row in data.get("baselines", []):
        key = f"baseline:{row['id']}"
        labels[key] = row["label"]
        series[key] = data["per_image"]["baselines"][row["id"]]
    return figures.metric_distributions(series, labels)


def report_html(report):
    """Returns the report's self-contained HTML page as a string."""
    data = report.data
    if data.get("task") == "segmentation":
        return segmentation_html(report, template_environment())
    explanations = data["explanations"]
    models = {row["key"]: row for row in data["models"]}
    metric_names = [
        name
        for name in METRIC_DEFINITIONS
        if any(name in row["summary"]["all"] for row in explanations)
    ]
    histories = {
        row["name"]: (row["training"] or {}).get("history")
        for row in data["models"]
    }
    context = {
        "data": data,
        "first_screen": first_screen(report),
        "explorer": report.explorer,
        "per_class_resamples": PER_CLASS_RESAMPLES,
        "foreground_metrics": list(FOREGROUND_METRICS),
        "gallery_legend": [row["label"] for row in explanations],
        "created": report.created,
        "version": data["versions"]["explain_attn"],
        "metric_names": metric_names,
        "definitions": METRIC_DEFINITIONS,
        "distributions": _distributions(data),
        "curves": figures.training_curves(histories),
        "gallery": [
            _gallery_entry(example, data, models) for example in report.gallery
        ],
        "models_by_key": models,
        "faithfulness_figures": faithfulness_figures(data.get("faithfulness")),
        "training_figures": training_figures(
            data.get("training_record"), report.records
        ),
        "channel_figures": channel_figures(
            data.get("channels"), data["dataset"]["class_names"]
        ),
    }
    return template_environment().get_template("report.html").render(context)


def comparison_html(comparison, names):
    """The page of ``explain-attn compare --output``.

    Args:
        comparison: From `explain_attn.report.compare.compare_reports`.
        names: The two reports' file names (A, B).
    """
    from explain_attn import __version__

    template = template_environment().get_template("compare.html")
    return template.render(
        comparison=comparison, names=list(names), version=__version__
    )


FRAME_HEIGHT = 800
"""Height of the report's frame in a notebook, in CSS pixels."""


def report_frame(report, *, height=FRAME_HEIGHT):
    """The report as HTML for a notebook: its page in an ``<iframe>``."""
    template = template_environment().get_template("notebook_frame.html")
    return template.render(html=report_html(report), height=height)
