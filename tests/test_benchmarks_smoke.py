"""Smoke test of the benchmark command: it runs and writes its table.

No timing is asserted: ``--quick`` uses tiny sizes whose figures mean
nothing. The results go to ``tmp_path``, never into the repository.
"""

import subprocess
import sys
from pathlib import Path

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
