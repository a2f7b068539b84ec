"""The report's JSON Schema: every report validates, and the validator for
the schema's subset of JSON Schema is right on hand-made documents."""

import json

import pytest

from explain_attn.report.schema import (
    SCHEMA_PATH,
    check_report,
    report_schema,
    undeclared,
    validate,
)

SCHEMA = {
    "type": "object",
    "required": ["n", "items"],
    "properties": {
        "n": {"type": "integer", "minimum": 0, "maximum": 10},
        "items": {"type": "array", "items": {"$ref": "#/$defs/item"}},
        "kind": {"enum": ["a", "b"]},
        "closed": {"type": "object", "additionalProperties": False},
    },
    "additionalProperties": {"type": ["number", "null"]},
    "$defs": {"item": {"type": "string"}},
}


def test_the_tiny_report_validates(tiny_report):
    _, _, json_path = tiny_report
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert validate(document) == []
    for key in ("baselines", "per_class", "warnings", "findings"):
        assert key in document


def test_the_golden_report_of_an_earlier_version_still_validates():
    # Written before the optional keys of version 1 were added; the golden
    # file leaves out the machine's library versions.
    golden = SCHEMA_PATH.parents[2] / "tests" / "golden" / "tiny_report.json"
    document = json.loads(golden.read_text(encoding="utf-8"))
    document["versions"] = {}
    assert validate(document) == []


def test_the_declaration_check_finds_an_undeclared_key():
    schema = {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": {"$ref": "#/$defs/row"}},
            "free": {"type": "object", "additionalProperties": {}},
        },
        "$defs": {"row": {"type": "object", "properties": {"a": {}}}},
    }
    document = {"rows": [{"a": 1}, {"a": 2, "b": 3}], "free": {"x": 1}}
    assert undeclared(document, schema) == ["$.rows[1].b"]
    document["section"] = {}
    assert "$.section" in undeclared(document, schema)
    # The shipped schema: a key no section writes is caught at any depth.
    golden = SCHEMA_PATH.parents[2] / "tests" / "golden" / "tiny_report.json"
    report = json.loads(golden.read_text(encoding="utf-8"))
    report["models"][0]["training"] = {"source": "cache", "speed": 1.0}
    report["explanations"][0]["summary"]["all"]["entropy"]["mode"] = 0.5
    report["new_section"] = {"x": 1}
    assert undeclared(report) == [
        "$.models[0].training.speed",
        "$.explanations[0].summary.all.entropy.mode",
        "$.new_section",
    ]


def test_every_key_a_report_writes_is_declared(tiny_report):
    _, _, json_path = tiny_report
    document = json.loads(json_path.read_text(encoding="utf-8"))
    assert undeclared(document) == []
    golden = SCHEMA_PATH.parents[2] / "tests" / "golden" / "tiny_report.json"
    document = json.loads(golden.read_text(encoding="utf-8"))
    assert undeclared(document) == []


def test_a_valid_hand_made_document():
    document = {"n": 3, "items": ["x"], "kind": "a", "extra": None}
    assert validate(document, SCHEMA) == []


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"items": []}, "$: missing key 'n'"),
        ({"n": True, "items": []}, "$.n: expected integer"),
        ({"n": 1.5, "items": []}, "$.n: expected integer"),
        ({"n": -1, "items": []}, "$.n: -1 is below 0"),
        ({"n": 11, "items": []}, "$.n: 11 is above 10"),
        ({"n": 1, "items": [3]}, "$.items[0]: expected string"),
        ({"n": 1, "items": [], "kind": "c"}, "$.kind: 'c' is not one of"),
        ({"n": 1, "items": [], "closed": {"x": 1}}, "unexpected key 'x'"),
        ({"n": 1, "items": [], "extra": "text"}, "$.extra: expected number"),
        ({"n": 1, "items": [], "extra": float("nan")}, "expected number"),
        ([], "$: expected object"),
    ],
)
def test_invalid_hand_made_documents(document, expected):
    errors = validate(document, SCHEMA)
    assert any(expected in error for error in errors), errors


def test_unknown_keywords_are_refused():
    with pytest.raises(ValueError, match="does not implement"):
        validate(1, {"type": "integer", "multipleOf": 2})


@pytest.mark.parametrize("task", ["classification", "segmentation"])
def test_the_shipped_schema_uses_only_the_implemented_subset(task):
    schema = report_schema(task)
    assert schema["version"] == 1
    validate({}, schema)  # raises on an unknown keyword anywhere reached
    for definition in schema["$defs"].values():
        validate(None, definition | {"$defs": schema["$defs"]})
        validate({"x": [1]}, definition | {"$defs": schema["$defs"]})


def test_check_report_names_the_problem():
    with pytest.raises(ValueError, match="not an explain-attn report"):
        check_report({"a": 1}, "x.json")
    with pytest.raises(ValueError, match="missing key 'models'"):
        check_report({"format": "explain-attn report 1"}, "x.json")
