"""The bad-input contract, shared by every `test_bad_input*.py` file.

A case is a command line that must end with exit code 2, exactly one line on
stderr starting ``Error:`` that contains the expected text, no traceback,
and no file written next to (or instead of) the requested output.
"""

from click.testing import CliRunner

from explain_attn.cli import main

BAD_DEVICE_COUNTS = [
    ("0", "devices must be a positive integer or 'all'. Received: devices=0"),
    (
        "abc",
        "devices must be a positive integer or 'all'. Received: devices='abc'",
    ),
    ("3", "--devices 3 asks for 3 devices but this machine has"),
]
"""``--devices`` values every command refuses (on a machine with fewer
than 3 devices, as CI's), with the start of the expected error."""


def outputs(output):
    return sorted(output.parent.glob(output.name + "*"))


def assert_bad_input(arguments, message, output, tmp_path):
    """Runs ``explain-attn ARGUMENTS`` in process and checks the contract.

    Args:
        arguments: the command line as a list of strings.
        message: text the single error line must contain.
        output: the output path the command was given (``tmp_path/...``).
        tmp_path: the test's folder, which must stay empty.
    """
    result = CliRunner().invoke(main, [str(a) for a in arguments])
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert message in lines[0], lines[0]
    assert "Traceback" not in result.output
    assert outputs(output) == []
    assert [p.name for p in tmp_path.iterdir()] == []


SEGMENTATION_CASES = [
    (
        ["report", "--data", "{data}", "--attention-model", "{classifier}",
         "--baseline-model", "{classifier}", "--task", "segmentation"],
        "so it is a classification model, not segmentation",
    ),
    (
        ["report", "--data", "{data}", "--attention-model", "{attention}",
         "--baseline-model", "{plain}", "--task", "classification"],
        "so it is a segmentation model, not classification",
    ),
    (
        ["report", "--data", "{no_masks}", "--attention-model", "{attention}",
         "--baseline-model", "{plain}"],
        "has no masks, and a segmentation model is scored against them",
    ),
    (
        ["report", "--data", "{data}", "--attention-model", "{coarse}",
         "--baseline-model", "{coarse}"],
        "predicts 16x16 pixels but the masks are 32x32",
    ),
    (
        ["report", "--data", "{data}", "--attention-model", "{three}",
         "--baseline-model", "{three}"],
        "a label value would fall outside the model's classes",
    ),
    (
        ["maps", "{plain}", "--data", "{data}", "--method", "grad_cam"],
        "Use --method seg_grad_cam",
    ),
    (
        ["maps", "{classifier}", "--data", "{data}", "--task", "segmentation"],
        "so it is a classification model, not segmentation",
    ),
    (
        ["report", "--data", "{data}", "--attention-model", "{attention}",
         "--baseline-model", "{plain}", "--cam-class", "2"],
        "--cam-class for a segmentation report is 'predicted'",
    ),
    (
        ["report", "--data", "{data}", "--attention-model", "{attention}",
         "--baseline-model", "{plain}", "--num-shards", "2", "--shard-index",
         "0", "--parts", "{parts}"],
        "--shard-index and --dask do not support segmentation models yet",
    ),
]  # fmt: skip
"""Command lines refused for segmentation models (`test_segmentation`):
``{name}`` are the models and folders of its fixture; the output is added."""
