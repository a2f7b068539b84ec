"""The report: stages from models and data to one shareable HTML file.

- `build`: `build_report` (models + test data -> `Report`) and
  `report_from_sources` (load the models and data, or train the demo).
- Stages, in order: `evaluate` (stream the test set), `summaries`
  (tables with intervals), `gallery`, `faithfulness` (the section).
- `demo` and `cache`: the demo pair, trained once and cached.
- `section` and `sections`: the report as sections (one protocol: what
  a section observes during the pass, what it computes, which figures it
  draws, which partial renders it), listed once as the fields of
  `sections.ReportDescription` (a `Report`'s typed ``description``;
  ``report.json`` is its ``to_json``). A new section is its module here, a
  ``templates/_name.html`` partial and one field there.
- `drawing`, `figures`, `*_figures` and `render`: figures (drawn from
  numbers and arrays, without TensorFlow, so that a helper process can
  draw them while the report computes) and HTML.

The public names below are imported on first use, so that a helper
process drawing figures (`drawing`) does not import TensorFlow.
"""

import importlib

_EXPORTS = {
    "explain_attn.report.build": (
        "Report",
        "build_report",
        "report_explanations",
        "report_from_sources",
        "write_json",
    ),
    "explain_attn.report.models": ("ReportModel",),
    "explain_attn.report.render": ("render_html", "report_html"),
    "explain_attn.report.sections": ("ReportDescription",),
}
_MODULE_OF = {
    name: module for module, names in _EXPORTS.items() for name in names
}

__all__ = sorted(_MODULE_OF)


def __getattr__(name):
    if name in _MODULE_OF:
        value = getattr(importlib.import_module(_MODULE_OF[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(
        f"module 'explain_attn.report' has no attribute {name!r}"
    )


def __dir__():
    return __all__
