"""The report's structure: every section, in page order, listed once.

`describe` computes the description (``report.json``'s numbers) section by
section; `contributors` collects what the sections observe during the
evaluation's pass; `page_context` is what the page's partials read. See
`explain_attn.report.section` for the protocol a section follows.
"""

from explain_attn.metrics import METRIC_DEFINITIONS
from explain_attn.report.baselines import BaselinesSection
from explain_attn.report.channels import ChannelsSection
from explain_attn.report.explorer import ExplorerSection
from explain_attn.report.faithfulness import FaithfulnessSection
from explain_attn.report.findings import FindingsSection
from explain_attn.report.first_screen import FirstScreenSection
from explain_attn.report.gallery import GallerySection
from explain_attn.report.per_class import PerClassSection
from explain_attn.report.run_record import RunSection
from explain_attn.report.section import PHASES, Computed, Section
from explain_attn.report.summaries import ModelsSection
from explain_attn.report.training_record import TrainingSection
from explain_attn.report.warnings import WarningsSection

__all__ = [
    "SECTIONS",
    "MethodsSection",
    "contributors",
    "describe",
    "page_context",
]


class MethodsSection(Section):
    """How every number is computed: the metrics' definitions (page
    only)."""

    name = "methods"
    partial = "_methods.html"


SECTIONS = (
    FirstScreenSection(),
    FindingsSection(),
    WarningsSection(),
    RunSection(),
    ModelsSection(),
    BaselinesSection(),
    ChannelsSection(),
    PerClassSection(),
    GallerySection(),
    ExplorerSection(),
    TrainingSection(),
    FaithfulnessSection(),
    MethodsSection(),
)
"""The report's sections, in the order the page shows them."""


def contributors(run, sections=SECTIONS):
    """Name -> `Contributor` of the evaluation's pass: every section's."""
    observing = {}
    for section in sections:
        observing.update(section.contributors(run))
    return observing


def describe(run, observed, sections=SECTIONS):
    """The description: every section computed, in `PHASES` order (page
    order within a phase).

    Returns:
        ``(data, attachments)``: ``report.json``'s numbers, and section
        name -> what the page shows beside them (`Computed.attachment`).
    """
    data, attachments = {}, {}
    for phase in PHASES:
        for section in sections:
            if section.phase != phase:
                continue
            computed = section.compute(run, observed, data)
            if not isinstance(computed, Computed):
                computed = Computed(computed)
            data.update(computed.keys)
            if computed.attachment is not None:
                attachments[section.name] = computed.attachment
    return data, attachments


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
