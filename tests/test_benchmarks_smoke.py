"""Smoke test of the benchmark command: it runs and writes its table.

No timing is asserted: ``--quick`` uses tiny sizes whose figures mean
nothing. The results go to ``tmp_path``, never into the repository.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_every_item(tmp_path):
    output = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.run",
            "--quick",
            "--output",
            str(output),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    text = output.read_text(encoding="utf-8")
    assert "## Machine" in text
    assert "| item | subject | measure | median |" in text
    for row in (
        "| 1 maps | small_attention | attention_maps / compiled forward |",
        "| 1 maps | small_attention | tutorial per-image / attention_maps |",
        "| 2 grad_cam | small_attention | grad_cam / forward+backward |",
        "| 2 grad_cam | small_attention | tf-keras-vis Gradcam / grad_cam |",
        "| 3 metrics |",
        "| 4 report | N=16 -> 32 | time per doubling |",
    ):
        assert row in text
    assert "| 1 maps |" in result.stdout


def test_scale_data_is_written_in_chunks_and_read_back(tmp_path):
    """`bench_report --scale` writes its test data chunk by chunk; the
    streamed source reads the generator's images, labels and masks."""
    from benchmarks.bench_report import write_scale_data
    from explain_attn.data import open_source, synthetic

    path = write_scale_data(tmp_path / "test.npz", 7, 24, chunk=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.npz"]
    source = open_source(str(path))
    parts = list(zip(*source.batches(4), strict=True))
    images, labels, masks = (np.concatenate(part) for part in parts)
    first, first_labels, first_masks = synthetic.generate(
        3, split="test", seed=1000, image_size=24
    )
    np.testing.assert_array_equal(images[:3], first / np.float32(255))
    np.testing.assert_array_equal(labels[:3], first_labels)
    np.testing.assert_array_equal(masks[:3], first_masks)
    assert images.shape == (7, 24, 24, 3) and source.has_masks
