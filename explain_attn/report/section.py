"""One protocol for every section of the report.

A report is a description, then a structure, then rendering (as in
ydata-profiling: ``model/description.py``, ``report/structure/``): the
description is a `explain_attn.report.sections.ReportDescription`, one
typed field per section holding that section's result, built once and
never changed; its fields, in page order, are the structure (the section
list, `explain_attn.report.sections.SECTIONS`); ``report.json`` is written
from it (`ReportDescription.to_json`); rendering includes each section's
partial.

A `Section` says, for its part of the report:

- what it **observes** during the evaluation's pass (`Section.
  contributors`: `explain_attn.report.contributions.Contributor` objects
  by name; their combined contributions come back in ``observed``);
- what it **computes** (`Section.compute`: its result, the value of its
  field of the description, from the `Run`, the observed contributions and
  the ``report.json`` keys of the sections computed before it, in
  `Section.phase` order), and which keys of ``report.json`` its result
  writes (`Section.keys`);
- which **figures** its page shows (`Section.figures`: drawn as soon as
  the section is computed, in a helper process when the command runs,
  `explain_attn.report.drawing`; the page reads them drawn in
  ``report.figures``);
- which partial **renders** it (`Section.partial`, a template of
  ``templates/``) and what that partial reads beyond ``data``
  (`Section.context`).

Adding a section is its module (a `Section` subclass and its result's
type), its partial and one line, its field of `ReportDescription`; its
keys are declared in ``report.schema.json`` (`tests/test_schema.py` checks
that every key a report writes is).
"""

import dataclasses

__all__ = ["PHASES", "Computed", "Run", "Section"]

PHASES = ("pass", "samples", "reading", "last")
"""When a section is computed: from the pass's numbers (``pass``), on
images read again (``samples``: the gallery, the checks), from the other
sections' numbers (``reading``), and from all of them (``last``). Within
a phase, sections are computed in page order."""


@dataclasses.dataclass(frozen=True)
class Run:
    """What every section may read: the report's models, explanations and
    data, and `build_report`'s options.

    Attributes:
        models: The `ReportModel` list (attention models, then baseline).
        explanations: The `Explanation` list; ``reference`` is the one the
            attention maps are compared with.
        test: The test data (a `Dataset` or a streamed source).
        options: `build_report`'s options by name (``seed``,
            ``batch_size``, ``strategy``, ``layers``, ``num_examples``,
            ``faithfulness``, ``say`` ...).
    """

    models: list
    explanations: list
    reference: object
    test: object
    options: dict = dataclasses.field(default_factory=dict)

    def __getattr__(self, name):
        try:
            return self.__dict__["options"][name]
        except KeyError:
            raise AttributeError(name) from None


@dataclasses.dataclass(frozen=True)
class Computed:
    """A section's result (its field of the description), and what its
    page shows beside the numbers (``attachment``: e.g. the gallery's
    images), kept in `explain_attn.report.build.Report` under the
    section's name."""

    result: object
    attachment: object = None


class Section:
    """The base of every section (see the module).

    Attributes:
        name: The section's name (its usual key in ``report.json``).
        partial: The template that renders it, or ``None``.
        phase: One of `PHASES`.
    """

    name = None
    partial = None
    phase = "pass"

    def contributors(self, run):
        """Name -> `Contributor` observing the pass (none by default)."""
        return {}

    def compute(self, run, observed, data):
        """The section's result, or a `Computed` (the result and an
        attachment); ``None`` when the report goes without it. ``data``
        holds the ``report.json`` keys of the sections computed before
        (read only)."""
        return None

    def figures(self, results, attachments, data):
        """The figures the page shows, as soon as the section is computed:
        name -> `explain_attn.report.drawing.Drawing` (none by default).
        ``results``, ``attachments`` and ``data``: the results, the
        attachments and the ``report.json`` keys of the sections computed
        so far, this one included (read only). `context` reads them drawn
        in ``report.figures[name]``."""
        return {}

    def keys(self, result, data):
        """The ``report.json`` keys that ``result`` writes, given those of
        the sections computed before (``data``, read only): a key already
        there is replaced in its place. By default the result under the
        section's name, nothing for ``None``."""
        return {} if result is None else {self.name: result}

    def shown(self, report):
        """Whether the page shows the section: by default, when it has a
        partial and (if it has numbers) its key is in the report."""
        return self.partial is not None

    def context(self, report):
        """What the partial reads beyond ``data``, ``created``,
        ``version`` and ``definitions`` (every partial has them)."""
        return {}
