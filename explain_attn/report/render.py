"""The last stage: a `Report` as one self-contained HTML page.

One jinja2 environment (autoescape, undefined is an error) renders every
page; each section's module computes what its partial shows
(`explain_attn.report.sections`).
"""

import functools
import math
from pathlib import Path

import jinja2

from explain_attn.models.saving import atomic_path
from explain_attn.report.sections import page_context
from explain_attn.report.segmentation import SegmentationDescription
from explain_attn.report.segmentation_render import segmentation_html

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


def report_html(report):
    """Returns the report's self-contained HTML page as a string: every
    shown section's partial (`explain_attn.report.sections`)."""
    if isinstance(report.description, SegmentationDescription):
        return segmentation_html(report, template_environment())
    template = template_environment().get_template("report.html")
    return template.render(page_context(report))


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
