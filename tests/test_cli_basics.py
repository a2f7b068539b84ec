"""Tests of the command line group: help, version, ``python -m``."""

import os
import subprocess
import sys
from importlib.metadata import version

from click.testing import CliRunner

import explain_attn
from explain_attn.cli import main

VERSION = version("explain-attn")


def test_version_comes_from_package_metadata():
    assert explain_attn.__version__ == VERSION
    assert VERSION != "0+unknown"


def test_version_option():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"explain-attn, version {VERSION}\n"


def test_help_option_shows_the_group_docstring():
    result = CliRunner().invoke(main, ["--help"], prog_name="explain-attn")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "Usage: explain-attn [OPTIONS] COMMAND [ARGS]..."
    )
    assert "Attention maps, Grad-CAM and shareable reports" in result.output
    for option in ("--version", "-h, --help"):
        assert option in result.output


def test_short_help_option_matches_long():
    runner = CliRunner()
    assert (
        runner.invoke(main, ["-h"]).output
        == runner.invoke(main, ["--help"]).output
    )


def test_unknown_option_is_a_usage_error():
    result = CliRunner().invoke(main, ["--no-such-option"])
    assert result.exit_code == 2
    assert "No such option" in result.output
    assert "--no-such-option" in result.output


def _python(folder, *arguments):
    """``python ARGUMENTS`` in a new process run in ``folder``, TensorFlow
    quiet; the completed process, its output as text."""
    return subprocess.run(
        [sys.executable, *arguments],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_python_dash_m_reports_the_version(tmp_path):
    result = _python(tmp_path, "-m", "explain_attn", "--version")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == f"explain-attn, version {VERSION}\n"


LEAN_KERAS = """
import importlib, importlib.util, sys
from explain_attn.cli.common import KERAS_EXTRAS_LEFT_OUT, import_keras
installed = [
    name for name in KERAS_EXTRAS_LEFT_OUT
    if importlib.util.find_spec(name.split(".")[0]) is not None
]
import_keras()
import keras
print(sorted(name for name in KERAS_EXTRAS_LEFT_OUT if name in sys.modules))
print(keras.layers.Dense(2)(keras.ops.ones((1, 3))).shape)
imported = [importlib.import_module(name).__name__ for name in installed]
print(imported == installed)
"""


def test_command_line_loads_keras_without_its_unused_extras(tmp_path):
    # What Keras imports for APIs no command uses stays out; Keras works,
    # and those of the packages that are installed import normally after.
    result = _python(tmp_path, "-c", LEAN_KERAS)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == ["[]", "(1, 2)", "True"]
