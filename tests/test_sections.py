"""The report's sections: listed once, computed by phase, rendered by
their partial (`explain_attn.report.section`, `explain_attn.report.
sections`)."""

import dataclasses
import types

import pytest

from explain_attn.report.baselines import Baselines
from explain_attn.report.render import template_directory
from explain_attn.report.section import PHASES, Computed, Run, Section
from explain_attn.report.sections import (
    SECTIONS,
    ReportDescription,
    contributors,
    describe,
    page_context,
)
from explain_attn.report.training_record import TrainingRecords


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
        return observed["early"] * run.scale


class _Late(Section):
    """Listed first, computed last: it sees the other section's key."""

    name = "late"
    partial = "_late.html"
    phase = "last"

    def compute(self, run, observed, data):
        return Computed(data["early"] + 1, attachment="shown")

    def context(self, report):
        return {"late_figure": report.data["late"] * 10}


def test_sections_are_computed_by_phase_then_listed_order():
    run = Run([], [], None, None, {"scale": 3})
    results, attachments = describe(run, {"early": 2}, (_Late(), _Early()))
    assert results == {"early": 6, "late": 7}
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


def test_the_description_has_one_field_per_section_in_page_order():
    fields = dataclasses.fields(ReportDescription)
    assert [field.name for field in fields] == [s.name for s in SECTIONS]
    assert [field.metadata["section"] for field in fields] == list(SECTIONS)


class _Marks(Section):
    """Adds a key to the rows another section wrote, without changing them."""

    name = "marks"
    phase = "last"

    def compute(self, run, observed, data):
        with pytest.raises(TypeError):
            data["rows"] = []  # What earlier sections wrote is read only.
        return {row["id"]: row["id"] * 2 for row in data["rows"]}

    def keys(self, result, data):
        rows = [{**row, "mark": result[row["id"]]} for row in data["rows"]]
        return {"rows": rows, "marks": len(result)}


class _Rows(Section):
    name = "rows"

    def compute(self, run, observed, data):
        return [{"id": 1}, {"id": 2}]


def test_a_later_section_extends_earlier_keys_in_place_without_mutating():
    run = Run([], [], None, None)
    rows = _Rows()
    results, _ = describe(run, {}, (_Marks(), rows))
    assert results["rows"] == [{"id": 1}, {"id": 2}]  # Unchanged.
    data = {}
    for section in (rows, _Marks()):
        data |= section.keys(results[section.name], data)
    # The rows keep their place; the new key comes after.
    assert list(data) == ["rows", "marks"]
    assert data["rows"] == [{"id": 1, "mark": 2}, {"id": 2, "mark": 4}]


def test_the_description_is_frozen_and_writes_the_same_json_each_time():
    results = {s.name: None for s in SECTIONS}
    results |= {
        "run": {"dataset": {"n": 1}, "settings": {}, "versions": {}},
        "models": {"models": [{"key": "m"}], "per_image": {}},
        "baselines": Baselines([]),
        "training_record": TrainingRecords({}, {"m": {"ok": True}}),
        "gallery": [],
        "findings": ["x"],
    }
    description = ReportDescription(**results)
    with pytest.raises(dataclasses.FrozenInstanceError):
        description.findings = []
    first = description.to_json()
    assert list(first) == [
        "dataset",
        "settings",
        "versions",
        "models",
        "per_image",
        "baselines",
        "channels",
        "gallery",
        "findings",
    ]
    # The check joined the model's training row; the result is unchanged.
    assert first["models"] == [
        {"key": "m", "training": {"check": {"ok": True}}}
    ]
    assert results["models"]["models"] == [{"key": "m"}]
    assert description.to_json() is first
