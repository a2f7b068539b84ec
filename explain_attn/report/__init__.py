"""The report: stages from models and data to one shareable HTML file.

- `build`: `build_report` (models + test data -> `Report`) and
  `report_from_sources` (load the models and data, or train the demo).
- Stages, in order: `evaluate` (stream the test set), `summaries`
  (tables with intervals), `gallery`, `faithfulness` (the section).
- `demo` and `cache`: the demo pair, trained once and cached.
- `section` and `sections`: the report as sections (one protocol: what
  a section observes during the pass, what it computes, which partial
  renders it), listed once as the fields of `sections.ReportDescription`
  (a `Report`'s typed ``description``; ``report.json`` is its
  ``to_json``). A new section is its module here, a
  ``templates/_name.html`` partial and one field there.
- `render`, `figures`, `faithfulness_figures`: HTML and figures.
"""

from explain_attn.report.build import (
    Report,
    build_report,
    report_explanations,
    report_from_sources,
    write_json,
)
from explain_attn.report.models import ReportModel
from explain_attn.report.render import render_html, report_html
from explain_attn.report.sections import ReportDescription

__all__ = [
    "Report",
    "ReportDescription",
    "ReportModel",
    "build_report",
    "render_html",
    "report_explanations",
    "report_from_sources",
    "report_html",
    "write_json",
]
