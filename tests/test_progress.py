"""Progress with the time left: drawn on a terminal, silent in a log and
under ``--quiet``."""

import io

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn.cli import main
from explain_attn.progress import (
    EpochProgress,
    Progress,
    keras_verbose,
    progress_enabled,
    quiet,
    time_left,
)


class _Terminal(io.StringIO):
    def isatty(self):
        return True


class _Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_time_left_is_the_pace_so_far():
    assert time_left(10.0, 250, 1000) == 30.0  # 10 s per 250 -> 750 left
    assert time_left(4.0, 1, 3) == 8.0
    assert time_left(5.0, 3, 3) == 0.0
    assert time_left(0.0, 0, 10) is None  # nothing done: no estimate


def test_a_terminal_gets_a_redrawn_line_with_the_time_left():
    stream, clock = _Terminal(), _Clock()
    bar = Progress(1000, "evaluation", unit="images", stream=stream,
                   clock=clock)  # fmt: skip
    clock.now = 10.0
    bar.update(250)
    clock.now = 100.0
    bar.update(1000)
    bar.close()
    text = stream.getvalue()
    first, second = text.split("\r")[1:]
    assert "250/1,000 images · 30 s left" in first
    assert "1,000/1,000 images · 0 s left" in second
    assert first.count("█") == 4 and first.count("░") == 12  # a quarter
    assert text.endswith("\n")


def test_minutes_are_written_as_minutes():
    stream, clock = _Terminal(), _Clock()
    bar = Progress(10, "training", unit="epochs", stream=stream, clock=clock)
    clock.now = 50.0
    bar.update(2)  # 25 s an epoch, 8 left: 200 s
    assert "2/10 epochs · 3 min 20 s left" in stream.getvalue()


def test_a_log_and_quiet_get_nothing():
    log = io.StringIO()  # not a terminal
    bar = Progress(10, "evaluation", stream=log)
    bar.update(5)
    bar.close()
    assert log.getvalue() == ""
    terminal = _Terminal()
    with quiet():
        assert not progress_enabled(terminal)
        bar = Progress(10, "evaluation", stream=terminal)
        bar.update(5)
        bar.close()
        assert keras_verbose() == 0
    assert terminal.getvalue() == ""
    assert progress_enabled(terminal)  # quiet ends with its block


def test_keras_bars_only_on_a_terminal(monkeypatch):
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert keras_verbose() == 2  # one line per epoch in a log
    monkeypatch.setattr("sys.stdout", _Terminal())
    assert keras_verbose() == 1


def test_epoch_progress_during_training():
    from explain_attn.models.training import train

    rng = np.random.default_rng(0)
    images = rng.random((8, 8, 8, 3), dtype=np.float32)
    labels = np.arange(8) % 2
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.GlobalAveragePooling2D()(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, "softmax")(x))
    stream = _Terminal()
    with pytest.warns(Warning):  # a 2-epoch model fails the training check
        train(model, (images, labels), epochs=2, batch_size=4, verbose=0,
              callbacks=[EpochProgress("tiny", stream=stream)])  # fmt: skip
    lines = stream.getvalue().split("\r")
    assert "1/2 epochs" in lines[1] and "2/2 epochs · 0 s left" in lines[2]


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("progress") / "set.npz"
    np.savez(
        path,
        images=rng.integers(0, 256, (12, 12, 12, 3), dtype=np.uint8),
        labels=np.arange(12) % 2,
    )
    return path


@pytest.mark.parametrize("quiet_flag", [False, True])
def test_cli_train_in_a_log_draws_no_bars(npz, tmp_path, quiet_flag):
    arguments = [
        "train", "--architecture", "baseline", "--data", str(npz),
        "--epochs", "2", "--validation-split", "0", "--no-record",
        "--output", str(tmp_path / "m.keras"),
    ] + (["--quiet"] if quiet_flag else [])  # fmt: skip
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert "\r" not in result.output and "\b" not in result.output
    assert "━" not in result.output and "█" not in result.output
    # In a log, one line per epoch; --quiet leaves them out.
    assert ("Epoch 2/2" in result.output) is not quiet_flag
    assert result.output.strip().endswith("m.keras")
