"""Bad input to `explain-attn compare`: exit 2, one line, nothing written."""

import json

import pytest
from catalogue import assert_bad_input


@pytest.fixture(scope="module")
def report_file(tiny_report):
    _, _, path = tiny_report
    return path


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_compare")
    files = {
        "text": folder / "notes.json",
        "other": folder / "other.json",
        "broken": folder / "broken.json",
    }
    files["text"].write_text("not json", encoding="utf-8")
    files["other"].write_text(json.dumps({"a": 1}), encoding="utf-8")
    files["broken"].write_text(
        json.dumps({"format": "explain-attn report 1", "models": 3}),
        encoding="utf-8",
    )
    return files


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing", "Report not found"),
        ("text", "is not JSON"),
        ("other", "is not an explain-attn report.json"),
        ("broken", "does not match the report schema"),
    ],
)
def test_bad_report_files(case, message, report_file, bad_files, tmp_path):
    second = (
        tmp_path.parent / "absent.json"
        if case == "missing"
        else bad_files[case]
    )
    output = tmp_path / "diff.html"
    arguments = ["compare", report_file, second, "--output", output]
    assert_bad_input(arguments, message, output, tmp_path)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--fail-under", "attention.accuracy"], "expects NAME=VALUE"),
        (["--fail-under", "attention.accuracy=high"], "expects NAME=VALUE"),
        (["--fail-under", "nothing.here=0.5"], "Unknown quantity"),
        (
            ["--fail-if-worse", "block2_attention.entropy"],
            "no better direction",
        ),
        (["--fail-if-worse", "mass_in_mask"], "several quantities"),
    ],
)
def test_bad_gates(option, message, report_file, tmp_path):
    output = tmp_path / "diff.html"
    arguments = ["compare", report_file, report_file, "--output", output]
    assert_bad_input(arguments + option, message, output, tmp_path)


def test_output_must_be_html(report_file, tmp_path):
    output = tmp_path / "diff.txt"
    arguments = ["compare", report_file, report_file, "--output", output]
    assert_bad_input(
        arguments, "--output must end in '.html'", output, tmp_path
    )
