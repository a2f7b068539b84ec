"""`explain-attn compare`: side-by-side numbers, paired or unpaired
differences, and gates that fail a CI step."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn import metrics
from explain_attn.cli import main
from explain_attn.report.compare import (
    check_gates,
    compare_reports,
    parse_threshold,
    per_image_quantities,
)


@pytest.fixture(scope="module")
def reports(tiny_report, tmp_path_factory):
    """A: the tiny report; B: the same with every prediction of the
    attention model wrong; C: B on other test images (another
    fingerprint)."""
    _, _, path_a = tiny_report
    first = json.loads(path_a.read_text(encoding="utf-8"))
    second = json.loads(json.dumps(first))
    labels = second["per_image"]["labels"]
    predictions = second["per_image"]["predictions"]["attention"]
    for index, label in enumerate(labels):
        predictions[index] = 1 - label  # two classes
    third = json.loads(json.dumps(second))
    third["dataset"]["fingerprint"] = "0" * 64
    folder = tmp_path_factory.mktemp("compare")
    paths = []
    for name, document in (("a", first), ("b", second), ("c", third)):
        path = folder / f"{name}.json"
        path.write_text(json.dumps(document), encoding="utf-8")
        paths.append(path)
    return [first, second, third], paths


def test_paired_differences_on_the_same_images(reports):
    (first, second, _), _ = reports
    comparison = compare_reports(first, second)
    assert comparison["paired"]
    rows = {row["name"]: row for row in comparison["rows"]}
    labels = np.array(first["per_image"]["labels"])
    correct_a = np.array(first["per_image"]["predictions"]["attention"]) == (
        labels
    )
    correct_b = np.array(second["per_image"]["predictions"]["attention"]) == (
        labels
    )
    row = rows["attention.accuracy"]
    assert row["a"] == pytest.approx(correct_a.mean())
    assert row["b"] == pytest.approx(correct_b.mean())
    expected = metrics.paired_difference(
        correct_b.astype(float), correct_a.astype(float), num_resamples=2000
    )
    assert row["difference"] == pytest.approx(expected, nan_ok=True)
    unchanged = rows["baseline.accuracy"]["difference"]
    assert unchanged["mean_difference"] == 0.0
    assert unchanged["ci_low"] == 0.0 and unchanged["ci_high"] == 0.0


def test_unpaired_differences_use_welch(reports):
    (first, _, third), _ = reports
    comparison = compare_reports(first, third)
    assert not comparison["paired"]
    row = next(r for r in comparison["rows"] if r["name"].endswith(
        "block2_attention.mass_in_mask"))  # fmt: skip
    a = np.array(first["per_image"]["metrics"]["attention:block2_attention"][
        "mass_in_mask"], float)  # fmt: skip
    b = a  # unchanged values, but not paired
    spread = 1.959963984540054 * math.sqrt(
        a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)
    )
    assert row["difference"]["mean_difference"] == pytest.approx(0.0)
    assert row["difference"]["ci_high"] == pytest.approx(spread)
    assert math.isnan(row["difference"]["p_value"])


def test_gates(reports):
    (first, second, _), _ = reports
    comparison = compare_reports(first, second)
    assert (
        check_gates(comparison, fail_under=[("baseline.accuracy", 0.0)]) == []
    )
    failed = check_gates(
        comparison,
        fail_under=[("attention.accuracy", 0.99)],
        fail_if_worse=["block2_attention.mass_in_mask"],
    )
    assert len(failed) == 1 and "attention.accuracy=0.99" in failed[0]
    with pytest.raises(ValueError, match="no better direction"):
        check_gates(comparison, fail_if_worse=["block2_attention.entropy"])
    with pytest.raises(ValueError, match="several quantities"):
        check_gates(comparison, fail_under=[("mass_in_mask", 0.1)])
    assert parse_threshold("a.b=0.5") == ("a.b", 0.5)


def test_quantity_names():
    report = {
        "per_image": {
            "labels": [0, 1],
            "predictions": {"m": [0, 0]},
            "metrics": {"m:layer": {"roc_auc": [0.5, None]}},
            "agreement_with_reference": {"m:layer": {"spearman": [1, 0]}},
        }
    }
    quantities = per_image_quantities(report)
    assert quantities["m.accuracy"].tolist() == [1.0, 0.0]
    assert math.isnan(quantities["m:layer.roc_auc"][1])
    assert "m:layer.agreement spearman" in quantities


def test_cli_writes_the_page_and_passes(reports, tmp_path):
    _, (path_a, path_b, _) = reports
    output = tmp_path / "diff.html"
    result = CliRunner().invoke(
        main,
        ["compare", str(path_a), str(path_b), "--output", str(output),
         "--fail-under", "baseline.accuracy=0.1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "same test images" in result.output
    html = output.read_text(encoding="utf-8")
    assert "attention.accuracy" in html and "http" not in html.split(
        "<body>")[1]  # fmt: skip


def test_a_ci_step_fails_on_a_worse_model(reports):
    """What a CI job runs: the process's exit code fails the step."""
    _, (path_a, path_b, _) = reports
    env = {k: v for k, v in os.environ.items()}
    command = [sys.executable, "-m", "explain_attn", "compare", str(path_a),
               str(path_b), "--fail-if-worse", "attention.accuracy",
               "--fail-under", "attention.accuracy=0.2"]  # fmt: skip
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=120
    )
    # Every image turned wrong: B - A is minus A's accuracy, and its
    # interval lies below 0.
    worse = compare_reports(*[json.loads(p.read_text()) for p in (
        path_a, path_b)])  # fmt: skip
    row = next(r for r in worse["rows"] if r["name"] == "attention.accuracy")
    assert row["difference"]["ci_high"] < 0
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("Gate failed: --fail-under attention.accuracy")
    assert "--fail-if-worse attention.accuracy: B - A = -0.5000" in lines[0]
