"""A failure after expensive work never loses it silently.

`explain_attn.stages` by hand, then failures injected late in
``explain-attn report`` and ``explain-attn train``: exit code 2, one line
on stderr naming what finished and what is kept, no half-written output,
and what the line says is kept is there.
"""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn.cli import main
from explain_attn.report.schema import validate
from explain_attn.stages import (
    current_log,
    failure_message,
    keep,
    recording,
    stage,
)


def _one_error_line(result, *, warnings=False):
    """The error line; ``warnings``: "Warning: " lines may come before."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    if warnings:
        lines = [x for x in lines if not x.startswith("Warning: ")]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: "), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


def test_without_a_recording_stages_change_nothing():
    assert current_log() is None
    with stage("a"):
        pass
    with pytest.raises(RuntimeError, match="boom"):
        with stage("b", section="optional"):  # Only skipped when recorded.
            raise RuntimeError("boom")
    keep("nothing to keep")  # Ignored.


def test_the_message_names_the_failed_stage_what_finished_and_is_kept():
    with recording() as log:
        with stage("training the models", kept="the models, in CACHE"):
            pass
        with pytest.raises(MemoryError):
            with stage("the evaluation of 1,000 test images"):
                raise MemoryError
    assert [s.description for s in log.finished] == ["training the models"]
    assert log.failed == "the evaluation of 1,000 test images"
    message = failure_message(log, MemoryError())
    seconds = log.finished[0].seconds
    assert message == (
        "The evaluation of 1,000 test images failed: MemoryError. Finished "
        f"before the error: training the models ({seconds:.1f} s). Kept: "
        "the models, in CACHE."
    )
    assert current_log() is None


def test_input_errors_before_any_work_are_told_as_they_are():
    with recording() as log:
        with pytest.raises(ValueError):
            with stage("loading"):
                raise ValueError("--output must end in '.html'")
    error = ValueError("--output must end in '.html'")
    assert failure_message(log, error) == "--output must end in '.html'"
    # Other errors are named by type, with the stage they stopped.
    assert failure_message(log, KeyError("x")) == (
        "Loading failed: KeyError: 'x'"
    )


def test_a_later_stage_replaces_what_is_kept_and_keeping_is_lazy():
    calls = []

    def weights():
        calls.append(1)
        return "the weights in W"

    with recording() as log:
        with stage("training", kept=weights):
            pass
        message = failure_message(log, OSError("disk full"))
        assert message.endswith("Kept: the weights in W.")
        with stage("saving", kept="the model in M"):
            pass
        keep("a note")
    assert calls == [1]
    assert failure_message(log, OSError("x")).endswith(
        "Kept: the model in M; a note."
    )


def test_keeping_that_fails_is_said_not_raised():
    def broken():
        raise OSError("read-only file system")

    with recording() as log:
        with stage("training", kept=broken):
            pass
    assert failure_message(log, RuntimeError("late")).endswith(
        "Kept: nothing (keeping it failed: OSError: read-only file system)."
    )


def test_an_optional_stage_is_skipped_and_reported():
    with recording() as log:
        with stage("the evaluation"):
            pass
        with stage("the checks", section="checks"):
            raise RuntimeError("injected")
        with stage("rendering"):
            pass
    (skipped,) = log.skipped
    assert (skipped.section, skipped.reason) == (
        "checks",
        "RuntimeError: injected",
    )
    message = failure_message(log)
    assert message.startswith("The checks failed: RuntimeError: injected. ")
    assert "the evaluation (" in message and "rendering" not in message
    assert message.endswith("Nothing of it is kept.")


def _report_arguments(report_command, output):
    return [
        *report_command, "--num-examples", "1", "--output", str(output),
        "--faithfulness", "fast", "--intervention-images", "4",
        "--randomization-images", "4", "--deletion-images", "4",
    ]  # fmt: skip


def test_a_failing_faithfulness_check_leaves_the_rest_written(
    report_command, tmp_path, monkeypatch
):
    from explain_attn.report import faithfulness

    def failing(*args, **kwargs):
        raise RuntimeError("injected in the randomisation check")

    monkeypatch.setattr(faithfulness, "faithfulness_section", failing)
    output = tmp_path / "report.html"
    result = CliRunner().invoke(main, _report_arguments(report_command, output))
    line = _one_error_line(result)
    assert line.startswith(
        "Error: The faithfulness checks failed: RuntimeError: injected in "
        "the randomisation check. Finished before the error: the "
        "evaluation of 12 test images ("
    )
    assert line.endswith(
        f"Kept: {output} and {output.with_suffix('.json')}, complete but "
        "for the faithfulness section (a warning in the report says so)."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "report.html",
        "report.json",
    ]
    data = json.loads(output.with_suffix(".json").read_text())
    validate(data)
    assert "faithfulness" not in data
    warning = data["warnings"][0]
    assert warning["kind"] == "section_failed"
    assert "RuntimeError: injected" in warning["text"]
    html = output.read_text(encoding="utf-8")
    assert "The Faithfulness section is missing" in html
    assert 'id="faithfulness"' not in html
    assert 'id="models"' in html and 'id="gallery"' in html


def test_a_failing_rendering_keeps_the_numbers(
    report_command, tmp_path, monkeypatch
):
    import explain_attn.report

    def failing(report):
        raise RuntimeError("a template broke")

    monkeypatch.setattr(explain_attn.report, "report_html", failing)
    output = tmp_path / "report.html"
    result = CliRunner().invoke(main, _report_arguments(report_command, output))
    line = _one_error_line(result)
    assert line.startswith(
        "Error: Rendering the report failed: RuntimeError: a template "
        "broke. Finished before the error: the evaluation of 12 test "
        "images ("
    )
    assert "s), the faithfulness checks (" in line
    json_path = output.with_suffix(".json")
    assert line.endswith(
        f"Kept: the report's numbers in {json_path} (no HTML written)."
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    data = json.loads(json_path.read_text())
    validate(data)
    assert data["faithfulness"]["settings"]["num_deletion_images"] == 4


def test_a_failure_after_demo_training_points_to_the_cache(
    tmp_path, monkeypatch
):
    from explain_attn.report import build

    rng = np.random.default_rng(3)
    np.savez(
        tmp_path / "data.npz",
        images=rng.random((30, 16, 16, 3), dtype=np.float32),
        labels=np.arange(30) % 2,
    )
    cache = tmp_path / "cache"
    monkeypatch.setenv("EXPLAIN_ATTN_CACHE_DIR", str(cache))

    def failing(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(build, "evaluate_parts", failing)
    output = tmp_path / "out" / "report.html"
    output.parent.mkdir()
    result = CliRunner().invoke(
        main,
        [
            "report", "--data", str(tmp_path / "data.npz"), "--epochs", "1",
            "--output", str(output),
        ],
    )  # fmt: skip
    line = _one_error_line(result)
    assert line.startswith(
        "Error: The evaluation of 6 test images failed: MemoryError. "
        "Finished before the error: training the demo models ("
    )
    assert line.endswith(
        f"Kept: the demo models, cached in {cache}; a re-run reuses them."
    )
    assert len(list(cache.rglob("meta.json"))) == 2
    assert list(output.parent.iterdir()) == []


FACTORY = """
import keras


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
"""


def test_a_failure_after_training_keeps_the_weights(tmp_path, monkeypatch):
    (tmp_path / "stages_factory.py").write_text(FACTORY)
    rng = np.random.default_rng(4)
    np.savez(
        tmp_path / "data.npz",
        images=rng.random((30, 16, 16, 3), dtype=np.float32),
        labels=np.arange(30) % 2,
    )

    def failing(model, path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", failing)
    output = tmp_path / "out" / "model.keras"
    output.parent.mkdir()
    factory = f"{tmp_path / 'stages_factory.py'}:build"
    result = CliRunner().invoke(
        main,
        [
            "train", "--data", str(tmp_path / "data.npz"), "--model-factory",
            factory, "--epochs", "2", "--no-record", "--output", str(output),
        ],
    )  # fmt: skip
    line = _one_error_line(result, warnings=True)  # e.g. "not learnt"
    weights = output.with_name("model.weights.h5")
    assert line.startswith(
        f"Error: Saving {output} failed: Cannot write {str(output)!r}: the "
        "disk is full ("
    )
    assert "; no model was written. Free space or write elsewhere." in line
    assert "Finished before the error: training for 2 epoch(s) on " in line
    assert f"Kept: the trained weights in {weights} (" in line
    assert [p.name for p in output.parent.iterdir()] == ["model.weights.h5"]
    # They are the trained weights, for the same network.
    from explain_attn.models.user_code import build_from_factory

    model = build_from_factory(factory, input_shape=(16, 16, 3), num_classes=2)
    keras.utils.set_random_seed(0)
    fresh = [w.copy() for w in model.get_weights()]
    model.load_weights(weights)
    assert any(
        not np.allclose(a, b)
        for a, b in zip(model.get_weights(), fresh, strict=True)
    )


def test_an_error_inside_a_compiled_pass_names_its_statement():
    """Without AutoGraph, an error raised while TensorFlow traces a
    `graph_function` still reads as TensorFlow's: one line naming the
    function and statement, the error's type and sentence, no values."""
    import tensorflow as tf

    from explain_attn.devices import TRACED_NOTE, graph_function
    from explain_attn.stages import error_reason

    def gate(batch):
        raise ValueError(f"gate cannot read {batch!r}.\nArguments received")

    function = graph_function(
        gate, input_signature=[tf.TensorSpec((None, 3), tf.float32)]
    )
    with pytest.raises(ValueError) as caught:
        function(tf.zeros((2, 3)))
    assert caught.value.__notes__ == [f"{TRACED_NOTE} 'gate'."]
    reason = error_reason(caught.value)
    assert reason.startswith("TensorFlow failed in gate: raise ValueError(")
    assert reason.endswith("(ValueError: gate cannot read)")  # No tensor.
    assert "\n" not in reason and "zeros" not in reason
    # The same error raised outside a trace keeps its own sentence.
    plain = ValueError("the mask is empty.")
    assert error_reason(plain) == "the mask is empty."
