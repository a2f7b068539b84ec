"""The report: its numbers against the public API, the HTML file, the CLI."""

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import XSS_CLASS, tiny_report_arguments

from explain_attn import attention_maps, grad_cam, load_model, metrics
from explain_attn.cli import main
from explain_attn.report import render_html, report_from_sources
from explain_attn.report.schema import undeclared


def test_models_and_accuracy(tiny_report, report_inputs):
    report, _, _ = tiny_report
    data = np.load(report_inputs["data"])
    rows = {row["role"]: row for row in report.data["models"]}

    for role in ("attention", "baseline"):
        model = load_model(report_inputs[role])
        predictions = model.predict(data["images"], verbose=0).argmax(-1)
        correct = predictions == data["labels"]
        assert rows[role]["parameters"] == model.count_params()
        assert rows[role]["accuracy"]["accuracy"] == pytest.approx(
            correct.mean()
        )
        assert report.data["per_image"]["predictions"][role] == (
            predictions.tolist()
        )
    (comparison,) = report.data["comparisons"]
    assert "percentage points" in comparison["sentence"]


def test_per_image_metrics_match_the_public_api(tiny_report, report_inputs):
    report, _, _ = tiny_report
    data = np.load(report_inputs["data"])
    attention = load_model(report_inputs["attention"])
    baseline = load_model(report_inputs["baseline"])
    per_image = report.data["per_image"]["metrics"]

    maps = attention_maps(attention, data["images"])
    assert sorted(maps) == ["block2_attention", "block3_attention"]
    expected = metrics.mass_in_mask(maps["block3_attention"], data["masks"])
    np.testing.assert_allclose(
        per_image["attention:block3_attention"]["mass_in_mask"], expected
    )
    cams = grad_cam(baseline, data["images"])
    expected = metrics.entropy(cams)
    np.testing.assert_allclose(
        np.array(per_image["baseline:grad_cam"]["entropy"], dtype=float),
        expected,
    )
    agreement = report.data["per_image"]["agreement_with_reference"]
    np.testing.assert_allclose(
        np.array(agreement["attention:block2_attention"]["spearman"], float),
        metrics.spearman(maps["block2_attention"], cams),
    )


def test_summaries_split_correct_and_wrong(tiny_report):
    report, _, _ = tiny_report
    labels = np.array(report.data["per_image"]["labels"])
    predictions = np.array(report.data["per_image"]["predictions"]["baseline"])
    row = next(
        r for r in report.data["explanations"] if r["id"] == "baseline:grad_cam"
    )
    correct = int((predictions == labels).sum())
    assert row["summary"]["all"]["entropy"]["n"] == len(labels)
    assert row["summary"]["correct"]["entropy"]["n"] == correct
    assert row["summary"]["wrong"]["entropy"]["n"] == len(labels) - correct
    attention_rows = [
        r for r in report.data["explanations"] if r["method"] == "attention"
    ]
    assert all("mass_in_mask_vs_reference" in r for r in attention_rows)


def test_gallery(tiny_report):
    report, _, _ = tiny_report
    indices = [example["index"] for example in report.gallery]
    assert len(indices) == 3 == len(set(indices))
    example = report.gallery[0]
    assert example["image"].shape == (16, 16, 3)
    assert {e.key for e in example["overlays"]} == {
        row["id"] for row in report.data["explanations"]
    }
    assert all(o.shape == (16, 16) for o in example["overlays"].values())


def test_html_is_self_contained_and_escaped(tiny_report):
    _, html_path, _ = tiny_report
    html = html_path.read_text(encoding="utf-8")

    assert XSS_CLASS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    sources = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sources, "the report has images"
    # Images are inline; links only jump within the page (findings).
    assert all(
        s.startswith(("data:image/png;base64,", "#")) for s in sources
    ), sorted({s[:30] for s in sources})
    assert any(s.startswith("data:image/png;base64,") for s in sources)
    assert "http://" not in html and "https://" not in html
    assert html_path.stat().st_size < 5 * 1024 * 1024
    for section in (
        "Model comparison",
        "Where does each model look?",
        "Examples",
        "Methods",
    ):
        assert section in html


def test_json_is_strict_and_deterministic(tiny_report, report_inputs):
    report, _, json_path = tiny_report

    def no_nan(constant):
        raise AssertionError(f"non-strict JSON constant {constant}")

    written = json.loads(json_path.read_text(), parse_constant=no_nan)
    assert written["dataset"]["num_images"] == 12
    again = report_from_sources(**tiny_report_arguments(report_inputs))
    from explain_attn.report.build import _json_ready

    assert _json_ready(again.data) == written


def test_without_masks_foreground_metrics_are_left_out(report_inputs, tmp_path):
    report = report_from_sources(
        str(report_inputs["data_without_masks"]),
        attention_models=[str(report_inputs["attention"])],
        baseline_model=str(report_inputs["baseline"]),
        num_examples=2,
        verbose=0,
    )
    metrics_seen = set(report.data["per_image"]["metrics"]["baseline:grad_cam"])
    assert metrics_seen == {"entropy", "sparseness"}
    assert "no foreground masks" in report.data["notes"][0]
    render_html(report, tmp_path / "r.html")
    assert "no foreground masks" in (tmp_path / "r.html").read_text()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"num_examples": 0}, "`num_examples` must be a positive integer"),
        ({"baseline_model": None}, "Give both --attention-model"),
        ({"layers": ["nope"]}, "No layer named 'nope'"),
    ],
)
def test_bad_options(report_inputs, options, message):
    arguments = {
        "attention_models": [str(report_inputs["attention"])],
        "baseline_model": str(report_inputs["baseline"]),
        "verbose": 0,
        **options,
    }
    with pytest.raises(ValueError, match=message):
        report_from_sources(str(report_inputs["data"]), **arguments)


def test_model_without_attention_is_refused(report_inputs):
    with pytest.raises(ValueError, match="explain-attn layers"):
        report_from_sources(
            str(report_inputs["data"]),
            attention_models=[str(report_inputs["baseline"])],
            baseline_model=str(report_inputs["baseline"]),
            verbose=0,
        )


def test_cli_report_with_given_models(report_command, tmp_path):
    output = tmp_path / "out" / "my report.html"
    output.parent.mkdir()
    result = CliRunner().invoke(
        main,
        [
            *report_command,
            "--num-examples",
            "2",
            "--output",
            str(output),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1] == str(output)
    assert output.is_file()
    assert output.with_suffix(".json").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--num-examples", "0"], "--num-examples"),
        (["--output", "missing/dir/r.html"], "does not exist"),
        (["--output", "r.txt"], "must end in '.html'"),
        (["--layer", "nope"], "No layer named 'nope'"),
    ],
)
def test_cli_report_bad_input(
    report_command, tmp_path, monkeypatch, arguments, message
):
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    result = CliRunner().invoke(main, [*report_command, *arguments])
    written = sorted(p.name for p in workdir.iterdir())
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output
    assert written == []


def test_demo_on_sample_data_generates_training_images_only_to_train(
    tmp_path, monkeypatch
):
    from explain_attn.data import synthetic

    monkeypatch.setattr(synthetic, "DEMO_TRAIN_SIZE", 48)
    options = {
        "epochs": 1,
        "num_examples": 2,
        "cache_dir": tmp_path,
        "verbose": 0,
        "faithfulness": False,
    }
    first = report_from_sources("sample", **options)

    def refuse(*args, **kwargs):
        raise AssertionError("the training split was generated")

    monkeypatch.setattr(synthetic, "generate", refuse)
    second = report_from_sources("sample", **options)

    sources = [
        {m["training"]["source"] for m in r.data["models"]}
        for r in (first, second)
    ]
    assert sources == [{"trained"}, {"cache"}]
    assert {
        m["training"]["training_images"] for m in second.data["models"]
    } == {48}
    assert second.data["dataset"]["num_images"] == 1000
    assert first.data["per_image"] == second.data["per_image"]
    # The demo's training rows (history, check, record) are declared too.
    assert undeclared(first.data) == [] and undeclared(second.data) == []
