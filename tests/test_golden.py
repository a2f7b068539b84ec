"""The report's numbers are pinned: a refactor must not change them.

``tests/golden/tiny_report.json`` holds the numbers of the `tiny_report`
fixture (two tiny untrained models, 12 images with masks, faithfulness on)
as the code computed them when the file was written. Keys that describe the
machine (library versions) are left out; numbers are compared with a
relative tolerance of 1e-5, because TensorFlow's CPU kernels are not
bit-identical on every machine. Rank metrics (see "Near-ties" in
`explain_attn.metrics.foreground`) turn those last-bit differences into
swaps of near-equal pixels: each of their numbers (per image, or a mean,
median or interval bound of per-image values, which move no more than
the values do) may differ by `RANK_SWAPS` swap steps, the steps computed
from the fixture's masks (`rank_tolerances`); the pointing game may flip
for one image, and Spearman correlations with randomized networks' maps
agree to `RANDOMIZED_SPEARMAN`; the faithfulness checks' probabilities
(curves, paired differences) agree to `FAITHFULNESS_NOISE`, and the
p-value of a paired difference that small is not compared. Keys the
report gained since the file was written are allowed; every key of the
file must still be there with its value.

To rewrite the file after an intended change of the numbers, run
``EXPLAIN_ATTN_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py`` and
say why in the commit.
"""

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden" / "tiny_report.json"
MACHINE_KEYS = ("versions",)
RANK_SWAPS = 2
"""Swaps of neighbouring ranks allowed per map across machines: a CPU with
other float kernels swapped one pair in the issue that set this (roc_auc
off by 1.3e-4 = 1 / (36 * 220), one swap step)."""


def rank_tolerances(masks, count):
    """Absolute tolerance of each rank metric: `RANK_SWAPS` swap steps (the
    metrics' notes) for the smallest mask of ``masks`` (N, H, W) bool, and
    one image of ``count`` for the pointing game."""
    from explain_attn.metrics.arrays import DEFAULT_FRACTION, num_top_pixels

    pixels = masks[0].size
    positives = int(masks.sum(axis=(1, 2)).min())
    negatives = int((~masks).sum(axis=(1, 2)).min())
    top = num_top_pixels(DEFAULT_FRACTION, pixels)
    steps = {
        "roc_auc": 1 / (positives * negatives),
        "rank_accuracy": 1 / positives,
        "top_fraction_iou": 1 / positives,
        "top_fraction_overlap": 2 / top,
        "spearman": 12 / (pixels * (pixels + 1)),
    }
    tolerances = {name: RANK_SWAPS * step for name, step in steps.items()}
    return tolerances | {"pointing_game": 1 / count}


RENAMED_KEYS = {
    # Since explanations are values (any CAM method can be the reference
    # the attention maps are compared with), the keys no longer name
    # Grad-CAM; `data["reference"]` says which explanation it is.
    "agreement_with_baseline_grad_cam": "agreement_with_reference",
    "mass_in_mask_vs_baseline_grad_cam": "mass_in_mask_vs_reference",
}


def _renamed(value):
    if isinstance(value, dict):
        return {RENAMED_KEYS.get(k, k): _renamed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v) for v in value]
    return value


def _numbers(report_json):
    """The report's JSON without what depends on the machine or run: library
    versions and the temporary paths of the fixture's files."""
    data = json.loads(Path(report_json).read_text(encoding="utf-8"))
    for key in MACHINE_KEYS:
        data.pop(key, None)
    for model in data["models"]:
        model.pop("file", None)
    data["dataset"].pop("source", None)
    return data


RANDOMIZED_SPEARMAN = 0.01
"""Spearman correlations with a randomized network's maps: those maps are
plateaus of near-zero values (ReLU of near-cancelling sums) whose order is
float noise, so no swap count bounds them; two machines of one kind were
measured 2e-3 apart (cascade medians and per-image values)."""


FAITHFULNESS_NOISE = 5e-5
"""The faithfulness checks' numbers are the tiny untrained models'
probabilities (near 0.5) after deleting, inserting or replacing pixels
in the order of a map; another CPU's float kernels reorder near-equal
pixels of the maps (Grad-CAM's upsampled plateaus) and round the sums
otherwise. Between the machine that wrote the file and an AVX2 one (no
AVX-512), curves moved by up to 2.6e-5 and paired differences by up to
2.6e-6, and the p-value of a difference of 2e-6 (an exact sign-flip test
over 12 images) went from 0.607 to 0.584."""


def _noise_level(difference):
    """Whether a paired difference's mean is within `FAITHFULNESS_NOISE`:
    its p-value then measures float noise, and is not compared."""
    mean = difference.get("mean_difference")
    return isinstance(mean, float) and abs(mean) < FAITHFULNESS_NOISE


def _tolerance(where, tolerances):
    """The absolute tolerance of the number at path ``where``: a rank
    metric's (the last one the path names), a faithfulness check's
    probability's, else 1e-6."""
    if "randomization" in where and "spearman" in where:
        return RANDOMIZED_SPEARMAN
    names = [name for name in tolerances if name in where]
    if not names:
        return (
            FAITHFULNESS_NOISE if where.startswith("$.faithfulness.") else 1e-6
        )
    last = max(names, key=where.rindex)
    if last == "pointing_game" and where.endswith("]"):
        return 1.0  # One image's hit or miss.
    return tolerances[last]


def _differences(expected, actual, tolerances, where="$"):
    if isinstance(expected, dict) and isinstance(actual, dict):
        missing = sorted(set(expected) - set(actual))
        if missing:
            yield f"{where}: keys missing {missing}"
            return
        for key in expected:
            if key == "p_value" and _noise_level(expected):
                continue
            yield from _differences(
                expected[key], actual[key], tolerances, f"{where}.{key}"
            )
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{where}: length {len(actual)}, expected {len(expected)}"
            return
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            yield from _differences(want, got, tolerances, f"{where}[{index}]")
    elif isinstance(expected, float) or isinstance(actual, float):
        close = isinstance(actual, int | float) and math.isclose(
            expected,
            actual,
            rel_tol=1e-5,
            abs_tol=_tolerance(where, tolerances),
        )
        if not close:
            yield f"{where}: {actual!r}, expected {expected!r}"
    elif expected != actual:
        yield f"{where}: {actual!r}, expected {expected!r}"


def test_tiny_report_numbers_are_unchanged(tiny_report, report_inputs):
    _, _, json_path = tiny_report
    with np.load(report_inputs["data"]) as data:
        masks = data["masks"]
    tolerances = rank_tolerances(masks, len(masks))
    actual = _numbers(json_path)
    if os.environ.get("EXPLAIN_ATTN_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(actual, indent=1) + "\n", encoding="utf-8")
        pytest.skip(f"wrote {GOLDEN}")
    expected = _renamed(json.loads(GOLDEN.read_text(encoding="utf-8")))
    differences = list(_differences(expected, actual, tolerances))
    assert not differences, "\n".join(differences[:20])


def test_rank_tolerances_are_the_swap_steps():
    # 16 x 16 images with 6 x 6 masks, as the fixture's: one swap moves
    # roc_auc by 1 / (36 * 220), the difference seen across CPUs.
    masks = np.zeros((12, 16, 16), bool)
    masks[:, 2:8, 3:9] = True
    tolerances = rank_tolerances(masks, 12)
    assert tolerances["roc_auc"] == RANK_SWAPS / 7920
    assert tolerances["rank_accuracy"] == RANK_SWAPS / 36
    assert tolerances["pointing_game"] == 1 / 12
    assert _tolerance("$.per_image.metrics.a.roc_auc[3]", tolerances) == (
        RANK_SWAPS / 7920
    )
    assert _tolerance("$.per_image.metrics.a.pointing_game[3]", tolerances) == 1
    assert _tolerance(
        "$.explanations[0].summary.all.entropy.mean", tolerances
    ) == (1e-6)


def test_faithfulness_tolerances_cover_only_noise():
    where = "$.faithfulness.deletion_insertion.rows[4].deletion_curve[9]"
    assert _tolerance(where, {}) == FAITHFULNESS_NOISE
    noise = {"mean_difference": 2e-6, "p_value": 0.607}
    effect = {"mean_difference": 7e-4, "p_value": 0.027}
    moved = {"p_value": 0.5}
    assert not list(_differences(noise, noise | moved, {}))
    assert list(_differences(effect, effect | moved, {})) == [
        "$.p_value: 0.5, expected 0.027"
    ]
    # A difference beyond the noise is still one.
    assert list(_differences(effect, effect | {"mean_difference": 8e-4}, {}))


def test_one_swap_moves_roc_auc_by_its_step():
    """The step of the notes, checked on a map: swapping the ranks of a
    mask pixel and a neighbouring outside pixel moves roc_auc by 1/(P Q)."""
    from explain_attn.metrics import roc_auc

    masks = np.zeros((1, 16, 16), bool)
    masks[0, 2:8, 3:9] = True
    values = np.arange(256, dtype=np.float64).reshape(1, 16, 16)
    inside, outside = (2, 3), (2, 2)  # Values 35 and 34: neighbours.
    swapped = values.copy()
    swapped[0][inside], swapped[0][outside] = (
        values[0][outside],
        values[0][inside],
    )
    step = abs(roc_auc(values, masks)[0] - roc_auc(swapped, masks)[0])
    assert step == pytest.approx(1 / (36 * 220), rel=1e-12)
