"""The segmentation report's HTML: numbers in tables, the gallery figures.

`segmentation_html` renders ``segmentation.html`` (which extends
``base.html``) with the report's data and one figure per gallery image:
the image with its true label map outlined, then every gate's map and each
model's Seg-Grad-CAM overlaid.
"""

from explain_attn.report.figures import example_figure
from explain_attn.report.training_record import filmstrip

__all__ = ["segmentation_html"]


def _gallery(report):
    entries = []
    for example in report.gallery:
        maps = example["maps"]
        titles = [spec.label.replace(": ", "\n", 1) for spec in maps]
        uri = example_figure(
            example["image"],
            example["target"] > 0,
            list(maps.values()),
            titles,
        )
        entries.append({"index": example["index"], "figure": uri})
    return entries


def _filmstrips(report):
    """``(model name, layer path, data URI)`` of every recorded gate."""
    strips = []
    for row in report.description.training_record or []:
        record = report.records[row["key"]]
        for layer in row["layers"]:
            uri = filmstrip(record, layer["index"])
            strips.append((row["name"], layer["path"], uri))
    return strips


def segmentation_html(report, environment):
    """The page of a segmentation `Report`, rendered with ``environment``
    (`explain_attn.report.render.template_environment`)."""
    description = report.description
    context = {
        "data": description.to_json(),
        "created": report.created,
        "version": description.versions.get("explain_attn", ""),
        "gallery": _gallery(report),
        "filmstrips": _filmstrips(report),
        "explorer": report.explorer,
    }
    return environment.get_template("segmentation.html").render(context)
