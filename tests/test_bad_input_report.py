"""Bad input to the report's faithfulness options (see `catalogue`).

Sample sizes must be positive integers; a size larger than the test split
is not an error (the check uses every image and the report says so, see
`tests/test_faithfulness_modes.py`).
"""

import pytest
from catalogue import BAD_DEVICE_COUNTS, assert_bad_input

CASES = [
    (["--faithfulness", "bogus"], "Invalid value for '--faithfulness'"),
    (["--faithfulness", "FAST"], "Invalid value for '--faithfulness'"),
    (["--randomization-images", "0"], "0 is not in the range x>=1"),
    (["--deletion-images", "-5"], "-5 is not in the range x>=1"),
    (["--intervention-images", "many"], "'many' is not a valid integer"),
    (["--deletion-steps", "0"], "0 is not in the range x>=1"),
    (["--deletion-images", "2.5"], "'2.5' is not a valid integer"),
    (
        ["--no-faithfulness", "--faithfulness", "fast"],
        "--no-faithfulness and --faithfulness fast disagree",
    ),
    (
        ["--faithfulness", "off", "--deletion-images", "10"],
        "but the checks are off",
    ),
    (
        ["--no-faithfulness", "--randomization-images", "10"],
        "but the checks are off",
    ),
]


@pytest.mark.parametrize(("options", "message"), CASES)
def test_bad_faithfulness_options(report_command, options, message, tmp_path):
    output = tmp_path / "report.html"
    assert_bad_input(
        [*report_command, *options, "--output", output],
        message,
        output,
        tmp_path,
    )


@pytest.mark.parametrize(("devices", "message"), BAD_DEVICE_COUNTS)
def test_bad_device_counts(report_command, devices, message, tmp_path):
    output = tmp_path / "report.html"
    assert_bad_input(
        [*report_command, "--devices", devices, "--output", output],
        message,
        output,
        tmp_path,
    )
