"""The report's structure: its typed description, every section listed
once in page order.

`ReportDescription` has one field per section, in page order (the
section list: `SECTIONS` is read from its fields), typed with the
section's result; `describe` computes it section by section and it is
never changed after; `ReportDescription.to_json` writes ``report.json``'s
numbers from it. `contributors` collects what the sections observe during
the evaluation's pass; `page_context` is what the page's partials read.
See `explain_attn.report.section` for the protocol a section follows.
"""

import dataclasses
import functools
import types

from explain_attn.metrics import METRIC_DEFINITIONS
from explain_attn.report.baselines import Baselines, BaselinesSection
from explain_attn.report.channels import ChannelsSection
from explain_attn.report.explorer import ExplorerSection
from explain_attn.report.faithfulness import FaithfulnessSection
from explain_attn.report.findings import FindingsSection
from explain_attn.report.first_screen import FirstScreenSection
from explain_attn.report.gallery import GalleryRow, GallerySection
from explain_attn.report.per_class import PerClassSection
from explain_attn.report.run_record import RunRecord, RunSection
from explain_attn.report.section import PHASES, Computed, Section
from explain_attn.report.summaries import ModelsSection, ModelSummaries
from explain_attn.report.training_record import (
    TrainingRecords,
    TrainingSection,
)
from explain_attn.report.warnings import WarningsSection

__all__ = [
    "SECTIONS",
    "MethodsSection",
    "ReportDescription",
    "computing_order",
    "contributors",
    "describe",
    "page_context",
]


class MethodsSection(Section):
    """How every number is computed: the metrics' definitions (page
    only)."""

    name = "methods"
    partial = "_methods.html"


def _listed(section):
    """A field of `ReportDescription`: the result of ``section``."""
    return dataclasses.field(metadata={"section": section})


@dataclasses.dataclass(frozen=True)
class ReportDescription:
    """What a report found: one field per section, in page order, holding
    that section's result (`Section.compute`); ``None`` for a section that
    has no numbers (page only) or that the report goes without.

    Built once by `describe` and never changed after: ``report.json`` is
    `to_json`, and the page reads the fields. Adding a section is one line
    here (its field), its module and its partial.
    """

    first_screen: None = _listed(FirstScreenSection())
    findings: list[str] = _listed(FindingsSection())
    warnings: list[dict] = _listed(WarningsSection())
    run: RunRecord = _listed(RunSection())
    models: ModelSummaries = _listed(ModelsSection())
    baselines: Baselines = _listed(BaselinesSection())
    channels: dict | None = _listed(ChannelsSection())
    per_class: dict = _listed(PerClassSection())
    gallery: list[GalleryRow] = _listed(GallerySection())
    explorer: None = _listed(ExplorerSection())
    training_record: TrainingRecords = _listed(TrainingSection())
    faithfulness: dict | None = _listed(FaithfulnessSection())
    methods: None = _listed(MethodsSection())

    @functools.cached_property
    def _json(self):
        data = {}
        for section in computing_order(SECTIONS):
            data |= section.keys(getattr(self, section.name), data)
        return data

    def to_json(self):
        """``report.json``'s numbers: every section's `Section.keys`, in
        the order the sections are computed (read only: the same dict on
        every call)."""
        return self._json


SECTIONS = tuple(
    field.metadata["section"] for field in dataclasses.fields(ReportDescription)
)
"""The report's sections, in the order the page shows them (the fields of
`ReportDescription`)."""


def computing_order(sections):
    """``sections`` in `PHASES` order, page order within a phase."""
    return [s for phase in PHASES for s in sections if s.phase == phase]


def contributors(run, sections=SECTIONS):
    """Name -> `Contributor` of the evaluation's pass: every section's."""
    observing = {}
    for section in sections:
        observing.update(section.contributors(run))
    return observing


def describe(run, observed, sections=SECTIONS, drawer=None):
    """Every section's result, computed in `computing_order`; each
    section reads the ``report.json`` keys of those computed before, and
    its figures go to ``drawer`` (an `explain_attn.report.drawing.Drawer`)
    as soon as it is computed.

    Returns:
        ``(results, attachments)``: section name -> result (the fields of
        `ReportDescription` for `SECTIONS`), and section name -> what the
        page shows beside the numbers (`Computed.attachment`).
    """
    results, attachments, data = {}, {}, {}
    read_only = types.MappingProxyType
    for section in computing_order(sections):
        computed = section.compute(run, observed, read_only(data))
        if not isinstance(computed, Computed):
            computed = Computed(computed)
        results[section.name] = computed.result
        data |= section.keys(computed.result, data)
        if computed.attachment is not None:
            attachments[section.name] = computed.attachment
        if drawer is not None:
            drawings = section.figures(
                read_only(results), read_only(attachments), read_only(data)
            )
            drawer.submit(section.name, drawings)
    return results, attachments


def page_context(report, sections=SECTIONS):
    """What the page's template reads: ``data``, ``created``, ``version``,
    ``definitions``, the shown sections (``sections``) and every shown
    section's `Section.context`."""
    shown = [section for section in sections if section.shown(report)]
    context = {
        "data": report.data,
        "created": report.created,
        "version": report.data["versions"]["explain_attn"],
        "definitions": METRIC_DEFINITIONS,
        "sections": shown,
    }
    for section in shown:
        context.update(section.context(report))
    return context
