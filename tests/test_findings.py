"""The reading aids: baselines, warnings, per-class numbers and findings.

Every expected value is computed by hand or by an independent route.
"""

import copy

import numpy as np
import pytest

from explain_attn import metrics
from explain_attn.explanations.methods import get_method
from explain_attn.report.baselines import (
    baseline_results,
    baseline_values,
    baselines_section,
    centre_prior,
)
from explain_attn.report.build import dataset_name
from explain_attn.report.figures import layer_block, panel_title
from explain_attn.report.findings import findings
from explain_attn.report.per_class import confusion_matrix, per_class_section
from explain_attn.report.warnings import (
    MapStatistics,
    majority_warnings,
    map_warnings,
    mask_warnings,
    training_warnings,
)


def _masks():
    masks = np.zeros((3, 8, 8), bool)
    masks[0, 2:6, 2:6] = True  # 16 of 64 pixels, centred
    masks[1, :2, :] = True  # 16 of 64 pixels, top rows
    masks[2, 0, 0] = True  # 1 pixel, a corner
    return masks


def test_flat_map_scores_the_mask_share_and_half_auc():
    values = baseline_values(_masks())["flat"]
    np.testing.assert_allclose(values["mass_in_mask"], [0.25, 0.25, 1 / 64])
    # Ties broken in expectation: the hit rate is the mask's share.
    np.testing.assert_allclose(values["pointing_game"], [0.25, 0.25, 1 / 64])
    np.testing.assert_allclose(values["roc_auc"], [0.5, 0.5, 0.5])


def test_centre_prior_is_the_documented_gaussian():
    prior = centre_prior((4, 6))
    y, x = np.mgrid[0:4, 0:6]
    expected = np.exp(
        -((y + 0.5 - 2) ** 2) / (2 * 1.0**2) - (x + 0.5 - 3) ** 2 / (2 * 1.5**2)
    )
    np.testing.assert_allclose(prior, expected, rtol=1e-6)
    centre = baseline_values(_masks())["centre"]
    # The centred square holds the Gaussian's central mass.
    full = centre_prior((8, 8))
    assert centre["mass_in_mask"][0] == pytest.approx(
        full[2:6, 2:6].sum() / full.sum(), rel=1e-6
    )
    assert centre["pointing_game"].tolist() == [1.0, 0.0, 0.0]


def _data(own_mass, masks):
    """A report's numbers with one attention explanation."""
    count = len(masks)
    row = {"mass_in_mask": list(own_mass), "roc_auc": [0.5] * count}
    return {
        "bootstrap_resamples": 1000,
        "explanations": [
            {
                "id": "a:layer",
                "label": "a · layer",
                "method": "attention",
                "summary": {
                    "all": {
                        name: metrics.summarize(values, num_resamples=1000)
                        for name, values in row.items()
                    }
                },
            }
        ],
        "per_image": {"metrics": {"a:layer": row}},
    }


def test_baselines_section_marks_values_not_above_the_flat_map():
    masks = np.zeros((40, 8, 8), bool)
    masks[:, :4, :] = True  # half of each image: the flat map scores 0.5
    data = _data(np.full(40, 0.9), masks)
    baselines_section(data, masks, seed=0)
    row = data["explanations"][0]
    assert row["vs_flat"]["mass_in_mask"]["mean_difference"] == pytest.approx(
        0.4
    )
    assert "mass_in_mask" not in row["at_chance"]
    assert "roc_auc" in row["at_chance"]  # 0.5 against 0.5
    flat = data["baselines"][0]
    assert flat["id"] == "flat"
    assert flat["summary"]["all"]["mass_in_mask"]["mean"] == pytest.approx(0.5)
    assert len(data["per_image"]["baselines"]["centre"]["roc_auc"]) == 40


def test_baseline_results_leave_the_models_numbers_unchanged():
    masks = np.zeros((40, 8, 8), bool)
    masks[:, :4, :] = True
    data = _data(np.full(40, 0.9), masks)
    before = copy.deepcopy(data)
    result = baseline_results(data, masks, seed=0)
    assert data == before  # A result, not a change to another section's.
    assert result.vs_flat["a:layer"]["mass_in_mask"][
        "mean_difference"
    ] == pytest.approx(0.4)
    assert result.at_chance == {"a:layer": ["roc_auc"]}
    keys = result.keys(data)  # The rows report.json writes, marks added.
    assert keys["explanations"][0]["at_chance"] == ["roc_auc"]
    assert "vs_flat" not in data["explanations"][0]
    assert list(keys["per_image"]) == ["metrics", "baselines"]


def test_baselines_section_without_masks_adds_an_empty_list():
    data = _data([0.5], np.zeros((1, 2, 2), bool))
    baselines_section(data, None)
    assert data["baselines"] == []
    assert "vs_flat" not in data["explanations"][0]


def _model(name, accuracy, n):
    correct = np.zeros(n, bool)
    correct[: round(accuracy * n)] = True
    return {
        "key": name,
        "name": name,
        "accuracy": metrics.accuracy_interval(correct),
    }


def test_majority_warning_uses_the_wilson_interval():
    labels = np.array([0] * 50 + [1] * 25 + [2] * 25)
    weak = _model("weak", 0.25, 100)
    # Wilson low end at 55/100 is 0.452 < 0.5: not better than the majority.
    close = _model("close", 0.55, 100)
    strong = _model("strong", 0.9, 100)
    found = majority_warnings([weak, close, strong], labels, ["a", "b", "c"])
    assert [w["subject"] for w in found] == ["weak", "close"]
    assert "'a'" in found[0]["text"] and "50.0%" in found[0]["text"]
    assert found[0]["section"] == "models"


def test_mask_warnings_for_masks_covering_almost_all_or_nothing():
    large = np.ones((4, 10, 10), bool)
    assert [w["kind"] for w in mask_warnings(large)] == ["mask_area"]
    small = np.zeros((4, 10, 10), bool)
    assert "less than 1%" in mask_warnings(small)[0]["text"]
    normal = np.zeros((4, 10, 10), bool)
    normal[:, :5] = True
    assert mask_warnings(normal) == []
    assert mask_warnings(None) == []


class _Explanation:
    """What the map statistics read of an `Explanation`."""

    def __init__(self, method, label):
        self.method, self.label, self.key = method, label, label
        self.is_attention = get_method(method).is_attention


def test_map_statistics_find_saturated_constant_and_one_pixel_maps():
    statistics = MapStatistics()
    saturated = _Explanation("attention", "gate")
    constant = _Explanation("grad_cam", "cam")
    tiny = _Explanation("attention", "tiny")
    healthy = _Explanation("attention", "healthy")
    rng = np.random.default_rng(0)
    gate = np.where(rng.random((4, 5, 5)) < 0.5, 0.001, 0.999)
    gate[:, 0, 0] = 0.5  # 1 of 25 values unsaturated: 96% saturated
    statistics(
        0,
        None,
        {
            saturated: gate,
            constant: np.zeros((4, 5, 5)),
            tiny: rng.random((4, 1, 1)),
            healthy: rng.uniform(0.2, 0.8, (4, 5, 5)),
        },
    )
    counts = statistics.result
    assert counts[saturated]["saturated"] == 4 * 24
    kinds = {w["subject"]: w["kind"] for w in map_warnings(counts)}
    assert kinds == {
        "gate": "saturated_map",
        "cam": "constant_map",
        "tiny": "one_pixel_map",
    }


def test_training_warning_reads_the_record():
    model = {"name": "m", "training": {"train_inference": {
        "training_mode": 0.9, "inference_mode": 0.5}}}  # fmt: skip
    assert training_warnings([model])[0]["kind"] == "train_inference"
    model["training"]["train_inference"]["inference_mode"] = 0.85
    assert training_warnings([model]) == []
    assert training_warnings([{"name": "m", "training": None}]) == []


def test_confusion_matrix_and_per_class_accuracy():
    labels = [0, 0, 1, 1, 1, 2]
    predicted = [0, 1, 1, 1, 0, 2]
    np.testing.assert_array_equal(
        confusion_matrix(labels, predicted, 3),
        [[1, 1, 0], [1, 2, 0], [0, 0, 1]],
    )
    data = {
        "dataset": {"class_names": ["x", "y", "z"]},
        "models": [{"key": "m"}],
        "per_image": {
            "labels": labels,
            "predictions": {"m": predicted},
            "metrics": {"e": {"mass_in_mask": [0.1, 0.3, None, 0.5, 0.7, 1]}},
        },
    }
    section = per_class_section(data)
    assert section["counts"] == [2, 3, 1]
    assert [a["accuracy"] for a in section["accuracy"]["m"]] == [
        0.5,
        pytest.approx(2 / 3),
        1.0,
    ]
    mass = section["metrics"]["e"]["mass_in_mask"]
    assert [m["mean"] for m in mass] == [
        pytest.approx(0.2),
        pytest.approx(0.6),
        1.0,
    ]
    assert mass[1]["nan_count"] == 1


def _report_numbers(at_chance):
    summary = {"mean": 0.211, "ci_low": 0.206, "ci_high": 0.217, "n": 10}
    accuracy = {"accuracy": 0.9, "ci_low": 0.85, "ci_high": 0.95, "n": 100}
    return {
        "models": [
            {"key": "attention", "name": "att", "accuracy": accuracy},
            {"key": "baseline", "name": "base", "accuracy": accuracy},
        ],
        "comparisons": [
            {
                "attention": "attention",
                "reference": "baseline",
                "n": 100,
                "mean_difference": 0.035,
                "ci_low": 0.014,
                "ci_high": 0.057,
            }
        ],  # fmt: skip
        "reference": {"label": "base · Grad-CAM"},
        "baselines": [
            {
                "id": "flat",
                "summary": {"all": {"mass_in_mask": {"mean": 0.189}}},
            },
            {
                "id": "centre",
                "summary": {"all": {"mass_in_mask": {"mean": 0.368}}},
            },
        ],  # fmt: skip
        "explanations": [
            {
                "label": "att · block2",
                "method": "attention",
                "summary": {"all": {"mass_in_mask": summary}},
                "at_chance": at_chance,
                "mass_in_mask_vs_reference": {
                    "mean_difference": -0.159,
                    "ci_low": -0.169,
                    "ci_high": -0.149,
                },
            }
        ],
    }


def test_findings_read_the_intervals():
    found = findings(_report_numbers([]))
    assert found[0]["section"] == "models"
    assert "3.5 [1.4, 5.7] points" in found[0]["text"]
    assert "attention is more accurate" in found[0]["text"]
    where = found[1]["text"]
    assert "0.211 [0.206, 0.217]" in where and "0.189" in where
    assert "above the flat map but not above the centre prior" in where
    assert "less mass in mask than base · Grad-CAM" in where
    chance = findings(_report_numbers(["mass_in_mask"]))[1]["text"]
    assert "at chance (not above the flat map)" in chance


def test_findings_on_faithfulness_and_classes():
    data = _report_numbers([])
    change = {"mean_difference": -0.5, "ci_low": -0.6, "ci_high": -0.4}
    none = {"mean_difference": 0.0, "ci_low": -0.01, "ci_high": 0.01}
    data["faithfulness"] = {
        "interventions": [
            {"name": "att", "layers": [
                {"layer": "used", "interventions": {
                    "uniform": {"accuracy_change": none},
                    "inverted": {"accuracy_change": change}}},
                {"layer": "idle", "interventions": {
                    "uniform": {"accuracy_change": none}}},
            ]}
        ],
        "randomization": [{"checks": [
            {"label": "a", "passed": True},
            {"label": "b", "passed": False}]}],
    }  # fmt: skip
    data["per_class"] = {
        "class_names": ["x", "y"],
        "accuracy": {
            key: [
                {"accuracy": 0.9, "ci_low": 0.8, "ci_high": 0.95},
                {"accuracy": 0.6, "ci_low": 0.5, "ci_high": 0.7},
            ]
            for key in ("attention", "baseline")
        },
    }
    texts = [f["text"] for f in findings(data)]
    assert any("used? Replacing its map (inverted) changes accuracy by "
               "-50.0 [-60.0, -40.0] points: the model uses" in t
               for t in texts)  # fmt: skip
    assert any("idle used?" in t and "no measurable use" in t for t in texts)
    assert any("1 of 2 maps change" in t and "failed: b" in t for t in texts)
    assert texts[-1].startswith("Weakest class by accuracy: att: 'y' 60.0")


def test_layer_blocks_and_panel_titles():
    assert layer_block("conv4_block2_1_conv") == "conv4"
    assert layer_block("block3_conv") == "block3"
    assert layer_block("block_13_expand") == "block_13"
    assert layer_block("predictions") == "predictions"
    title = panel_title(2, "attention", "Grad-CAM", "a_very_long_layer_name")
    first, second, third = title.split("\n")
    assert (first, second) == ("2. attention", "Grad-CAM")
    assert len(third) == 18 and third.endswith("…")


def test_dataset_name_is_the_data_folder_not_the_split(tmp_path):
    class Test:
        name = "test"

    (tmp_path / "bccd" / "test").mkdir(parents=True)
    assert dataset_name(Test(), tmp_path / "bccd") == "bccd"
    assert dataset_name(Test(), "sample") == "test"
