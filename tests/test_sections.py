"""The report's sections: listed once, computed by phase, rendered by
their partial (`explain_attn.report.section`, `explain_attn.report.
sections`)."""

import types

from explain_attn.report.render import template_directory
from explain_attn.report.section import PHASES, Computed, Run, Section
from explain_attn.report.sections import (
    SECTIONS,
    contributors,
    describe,
    page_context,
)


def test_every_section_is_listed_once_with_its_partial():
    names = [section.name for section in SECTIONS]
    assert len(names) == len(set(names))
    for section in SECTIONS:
        assert section.phase in PHASES, section.name
        assert (template_directory() / section.partial).is_file()


def test_the_page_includes_each_section_once_by_the_list():
    page = (template_directory() / "report.html").read_text(encoding="utf-8")
    assert "{% include section.partial %}" in page
    partials = [section.partial for section in SECTIONS]
    assert not any(partial in page for partial in partials)


class _Early(Section):
    """A section listed last but computed first (phase ``pass``)."""

    name = "early"

    def compute(self, run, observed, data):
        return {"early": observed["early"] * run.scale}


class _Late(Section):
    """Listed first, computed last: it sees the other section's key."""

    name = "late"
    partial = "_late.html"
    phase = "last"

    def compute(self, run, observed, data):
        return Computed({"late": data["early"] + 1}, attachment="shown")

    def context(self, report):
        return {"late_figure": report.data["late"] * 10}


def test_sections_are_computed_by_phase_then_listed_order():
    run = Run([], [], None, None, {"scale": 3})
    data, attachments = describe(run, {"early": 2}, (_Late(), _Early()))
    assert data == {"early": 6, "late": 7}
    assert attachments == {"late": "shown"}
    # Options are read as attributes; an unknown one is an AttributeError.
    assert run.scale == 3
    assert not hasattr(run, "missing")


def test_the_page_reads_each_shown_sections_context():
    report = types.SimpleNamespace(
        data={"late": 7, "versions": {"explain_attn": "9"}}, created="now"
    )
    context = page_context(report, (_Late(), _Early()))
    # _Early has no partial: not shown, no context.
    assert [section.name for section in context["sections"]] == ["late"]
    assert context["late_figure"] == 70
    assert context["version"] == "9" and context["created"] == "now"


def test_every_contributor_of_the_pass_comes_from_a_section():
    run = Run(
        [],
        [],
        None,
        types.SimpleNamespace(
            labels=[0], image_shape=(4, 4, 3), class_names=["a"]
        ),
        {"channel_layers": None, "batch_size": 8, "strategy": None},
    )
    observing = contributors(run)
    assert sorted(observing) == sorted(
        ["evaluation", "baselines", "masks", "maps", "channels", "thumbnails"]
    )
