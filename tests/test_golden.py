"""The report's numbers are pinned: a refactor must not change them.

``tests/golden/tiny_report.json`` holds the numbers of the `tiny_report`
fixture (two tiny untrained models, 12 images with masks, faithfulness on)
as the code computed them when the file was written. Keys that describe the
machine (library versions) are left out; numbers are compared with a
relative tolerance of 1e-5, because TensorFlow's CPU kernels are not
bit-identical on every machine. Keys the report gained since the file was
written are allowed; every key of the file must still be there with its
value.

To rewrite the file after an intended change of the numbers, run
``EXPLAIN_ATTN_WRITE_GOLDEN=1 python -m pytest tests/test_golden.py`` and
say why in the commit.
"""

import json
import math
import os
from pathlib import Path

import pytest

GOLDEN = Path(__file__).parent / "golden" / "tiny_report.json"
MACHINE_KEYS = ("versions",)

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


def _differences(expected, actual, where="$"):
    if isinstance(expected, dict) and isinstance(actual, dict):
        missing = sorted(set(expected) - set(actual))
        if missing:
            yield f"{where}: keys missing {missing}"
            return
        for key in expected:
            yield from _differences(
                expected[key], actual[key], f"{where}.{key}"
            )
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            yield f"{where}: length {len(actual)}, expected {len(expected)}"
            return
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            yield from _differences(want, got, f"{where}[{index}]")
    elif isinstance(expected, float) or isinstance(actual, float):
        close = isinstance(actual, int | float) and math.isclose(
            expected, actual, rel_tol=1e-5, abs_tol=1e-6
        )
        if not close:
            yield f"{where}: {actual!r}, expected {expected!r}"
    elif expected != actual:
        yield f"{where}: {actual!r}, expected {expected!r}"


def test_tiny_report_numbers_are_unchanged(tiny_report):
    _, _, json_path = tiny_report
    actual = _numbers(json_path)
    if os.environ.get("EXPLAIN_ATTN_WRITE_GOLDEN"):
        GOLDEN.write_text(json.dumps(actual, indent=1) + "\n", encoding="utf-8")
        pytest.skip(f"wrote {GOLDEN}")
    expected = _renamed(json.loads(GOLDEN.read_text(encoding="utf-8")))
    differences = list(_differences(expected, actual))
    assert not differences, "\n".join(differences[:20])
