"""Fault injection: a full disk, kills and Ctrl-C, a damaged cache.

Every case checks the contract of issue 22: the exit code, exactly one line
on stderr (``Warning:`` lines of training aside), nothing partial left
(no visible file, and no hidden ``.…partial-…`` sibling once the next run
has started), the earlier outputs byte for byte, and a rerun that succeeds.

- A full disk is a writer patched to raise ``ENOSPC`` at each write of each
  output (runs everywhere); where the machine lets this test mount a 3 MiB
  tmpfs (root, as CI), the maps also run out of a real disk.
- Kills and Ctrl-C are real signals to a real ``explain-attn`` process,
  sent by a test-only module (``--import``) when a chosen function is
  called, so that each lands in a known stage. These subprocesses run
  without ``TF_CPP_MIN_LOG_LEVEL``, as a user does.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn.cli import main

FACTORY = """
import keras

from explain_attn.attention import SpatialAttention


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu",
                            name="conv")(inputs)
    x = SpatialAttention(name="attention")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax",
                                 name="head")(x)
    return keras.Model(inputs, outputs)
"""

INJECT = """
# Test only: sends this process FAULT_SIGNAL when FAULT_AT
# ("module:Owner.attribute") is called the FAULT_CALL-th time (counting
# only calls whose arguments contain FAULT_MATCH, if set).
import importlib
import os
import signal

module_name, _, qualified = os.environ["FAULT_AT"].partition(":")
owner = importlib.import_module(module_name)
*parents, name = qualified.split(".")
for parent in parents:
    owner = getattr(owner, parent)
original = getattr(owner, name)
wanted = int(os.environ.get("FAULT_CALL", "1"))
match = os.environ.get("FAULT_MATCH", "")
number = getattr(signal, os.environ["FAULT_SIGNAL"])
calls = []


def injected(*args, **kwargs):
    if match in " ".join(map(str, args)):
        calls.append(1)
        if len(calls) == wanted:
            os.kill(os.getpid(), number)
    return original(*args, **kwargs)


setattr(owner, name, injected)
"""


@pytest.fixture(scope="module")
def tools(tmp_path_factory):
    """The model factory, the injection module and a small training set."""
    folder = tmp_path_factory.mktemp("fault_tools")
    (folder / "fault_factory.py").write_text(FACTORY)
    (folder / "fault_inject.py").write_text(INJECT)
    rng = np.random.default_rng(22)
    images = rng.random((40, 12, 12, 3), dtype=np.float32)
    labels = np.arange(40) % 2
    images[labels == 1, 3:9, 3:9] *= 0.3
    np.savez(folder / "train.npz", images=images, labels=labels)
    return {
        "factory": f"{folder / 'fault_factory.py'}:build",
        "inject": folder / "fault_inject.py",
        "data": folder / "train.npz",
    }


def _one_line(text, start):
    lines = [
        line
        for line in text.strip().splitlines()
        if not line.startswith("Warning: ")
    ]
    assert len(lines) == 1, text
    assert lines[0].startswith(start), lines[0]
    # Long only by the test's temporary paths (pytest-xdist puts each
    # worker's under popen-gwN/).
    temporary = r"/\S*?pytest-\d+/(popen-gw\d+/)?[^/ ']+"
    assert len(re.sub(temporary, "~", lines[0])) <= 450

    assert "Traceback" not in text and 'File "' not in text, text
    return lines[0]


def _snapshot(folder):
    """Every file under ``folder`` (hidden ones too) -> its bytes."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(Path(folder).rglob("*"))
        if path.is_file()
    }


def _visible(folder):
    return {k: v for k, v in _snapshot(folder).items() if "/." not in "/" + k}


def _invoke(arguments):
    return CliRunner().invoke(main, [str(a) for a in arguments])


def _fail_on(monkeypatch, owner, name, *, call=1, match=None):
    """Makes ``owner.name`` raise ENOSPC on its ``call``-th call (counting
    calls whose first argument contains ``match``)."""
    original = getattr(owner, name)
    calls = []

    def failing(*args, **kwargs):
        if match is None or match in " ".join(map(str, args[:2])):
            calls.append(1)
            if len(calls) == call:
                paths = [a for a in args if isinstance(a, str | Path)]
                raise OSError(
                    errno.ENOSPC, os.strerror(errno.ENOSPC), *paths[:1]
                )
        return original(*args, **kwargs)

    failing.__wrapped__ = original
    monkeypatch.setattr(owner, name, failing)
    return calls


# ------------------------------------------------------------- full disk


def _train_arguments(tools, output, *more, epochs=1):
    return [
        "train", "--data", tools["data"], "--model-factory",
        tools["factory"], "--epochs", epochs, "--batch-size", "8",
        "--validation-split", "0", "--output", output, *more,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tools, tmp_path_factory):
    """An earlier, successful training run: the set a failure must keep."""
    folder = tmp_path_factory.mktemp("trained")
    result = _invoke(_train_arguments(tools, folder / "model.keras"))
    assert result.exit_code == 0, result.output
    return folder


TRAIN_WRITES = {
    "record during training": ("numpy", "savez_compressed", 1, None),
    "progress during training": ("pathlib.Path", "write_text", 1, None),
    "model": ("keras.Model", "save", 1, None),
    "history": ("pathlib.Path", "write_text", 1, "model.json"),
    "record": ("shutil", "copyfile", 1, None),
}


def _owner(dotted):
    module, _, attribute = dotted.rpartition(".")
    if module and attribute[:1].isupper():
        return getattr(__import__(module, fromlist=[attribute]), attribute)
    return __import__(dotted, fromlist=["_"])


@pytest.mark.parametrize("write", list(TRAIN_WRITES))
def test_train_on_a_full_disk_keeps_the_earlier_set(
    write, tools, trained, tmp_path, monkeypatch
):
    for path in trained.iterdir():
        shutil.copy2(path, tmp_path / path.name)
    before = _snapshot(tmp_path)
    owner, name, call, match = TRAIN_WRITES[write]
    calls = _fail_on(monkeypatch, _owner(owner), name, call=call, match=match)
    result = _invoke(_train_arguments(tools, tmp_path / "model.keras"))
    assert calls, "the patched writer was never called"
    assert result.exit_code == 2, result.output
    line = _one_line(result.stderr, "Error: ")
    assert "the disk is full" in line
    assert str(tmp_path) in line
    assert "unchanged" in line or "Kept: the trained weights" in line
    after = _snapshot(tmp_path)
    # Only the trained weights may be added, as the line says.
    if "Kept: the trained weights" in line:
        assert after.pop("model.weights.h5")
    assert after == before


def test_maps_folder_on_a_full_disk_at_each_file(
    report_inputs, tmp_path, monkeypatch
):
    from explain_attn.explanations import export

    output = tmp_path / "maps"
    arguments = [
        "maps", report_inputs["attention"], "--data", report_inputs["data"],
        "--grad-cam", "--limit", "6", "--output", output,
    ]  # fmt: skip
    assert _invoke(arguments).exit_code == 0
    before = _snapshot(tmp_path)
    files = len(list(output.glob("*.npy")))
    for call in range(1, files + 1):
        with monkeypatch.context() as patch:
            _fail_on(patch, export, "reserve", call=call)
            result = _invoke(arguments)
        assert result.exit_code == 2, (call, result.output)
        line = _one_line(result.stderr, f"Error: Cannot write {str(output)!r}")
        assert "the disk is full (needs " in line
        assert f"the earlier maps in {str(output)!r} are unchanged" in line
        assert _snapshot(tmp_path) == before, call
    with monkeypatch.context() as patch:  # The manifest, written last.
        _fail_on(patch, Path, "write_text", match="manifest")
        result = _invoke(arguments)
    assert result.exit_code == 2
    _one_line(result.stderr, "Error: Cannot write")
    assert _snapshot(tmp_path) == before


def test_maps_npz_on_a_full_disk(report_inputs, tmp_path, monkeypatch):
    output = tmp_path / "maps.npz"
    output.write_bytes(b"earlier maps")
    _fail_on(monkeypatch, np, "savez_compressed")
    result = _invoke(
        [
            "maps", report_inputs["attention"], "--data",
            report_inputs["data"], "--limit", "4", "--output", output,
        ]
    )  # fmt: skip
    assert result.exit_code == 2
    line = _one_line(result.stderr, f"Error: Cannot write {str(output)!r}")
    assert f"the earlier {str(output)!r} is unchanged" in line
    assert _snapshot(tmp_path) == {"maps.npz": b"earlier maps"}


@pytest.mark.parametrize("name", ["report.json", "report.html"])
def test_report_on_a_full_disk_keeps_the_earlier_pair(
    name, report_command, tiny_report, tmp_path, monkeypatch
):
    import explain_attn.report

    # The report of the same inputs, built once (the writing is tested).
    report = tiny_report[0]
    monkeypatch.setattr(
        explain_attn.report, "report_from_sources", lambda *a, **k: report
    )
    monkeypatch.setattr(
        explain_attn.report, "report_html", lambda report: "<p>new</p>"
    )
    output = tmp_path / "report.html"
    output.write_text("earlier html")
    output.with_suffix(".json").write_text("earlier json")
    _fail_on(monkeypatch, Path, "write_text", match=name)
    result = _invoke([*report_command, "--no-faithfulness", "--output", output])
    assert result.exit_code == 2, result.output
    line = _one_line(result.stderr, "Error: ")
    assert f"Cannot write {str(tmp_path / name)!r}: the disk is full" in line
    assert "the earlier report.json and report.html are unchanged" in line
    assert _snapshot(tmp_path) == {
        "report.html": b"earlier html",
        "report.json": b"earlier json",
    }
    monkeypatch.setattr(Path, "write_text", Path.write_text.__wrapped__)
    result = _invoke([*report_command, "--output", output])  # Room again.
    assert result.exit_code == 0, result.output
    assert json.loads(output.with_suffix(".json").read_text())["models"]
    assert output.read_text() == "<p>new</p>"


def _small_tmpfs(path):
    """Mounts a 3 MiB tmpfs at ``path``; ``False`` where not allowed."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        return False
    path.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    return mounted.returncode == 0


@pytest.mark.slow
def test_maps_on_a_real_full_disk(report_inputs, tmp_path):
    """The case that was a SIGBUS: memory-mapped maps on a full disk."""
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk):
        pytest.skip("mounting a small tmpfs needs root on Linux")
    try:
        (disk / "filler").write_bytes(b"\0" * (3 * 2**20 - 8192))
        output = disk / "maps"
        result = subprocess.run(
            [
                sys.executable, "-m", "explain_attn", "maps",
                str(report_inputs["attention"]), "--data",
                str(report_inputs["data"]), "--grad-cam", "--output",
                str(output),
            ],
            capture_output=True, text=True, env=_user_environment(),
            timeout=300, check=False,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        line = _one_line(result.stderr, f"Error: Cannot write {str(output)!r}")
        assert "the disk is full (needs " in line
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_train_on_a_real_full_disk(tools, tmp_path):
    """The case that was a SIGSEGV: h5py writing on a full disk. Space is
    checked before h5py runs, for the model and the weights kept."""
    disk = tmp_path / "disk"
    if not _small_tmpfs(disk):
        pytest.skip("mounting a small tmpfs needs root on Linux")
    try:
        (disk / "filler").write_bytes(b"\0" * (3 * 2**20 - 300_000))
        output = disk / "model.keras"
        result = _invoke(_train_arguments(tools, output))
        assert result.exit_code == 2, result.output
        line = _one_line(result.stderr, f"Error: Saving {output} failed: ")
        assert f"Cannot write {str(output)!r}: the disk is full (needs " in line
        assert line.endswith(
            "Kept: nothing (keeping it failed: Cannot write "
            f"{str(disk / 'model.weights.h5')!r}: the disk is full (needs "
            + line.split("the disk is full (needs ")[-1]
        )
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ------------------------------------------------------ kills and Ctrl-C


def _user_environment(**fault):
    """The environment of a user: no TensorFlow log settings."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TF_CPP", "FAULT_"))
    }
    return {**environment, **{k: str(v) for k, v in fault.items()}}


def _killed(arguments, tools, cwd, **fault):
    """Runs ``explain-attn ARGUMENTS`` until the injected signal lands."""
    result = subprocess.run(
        [
            sys.executable, "-m", "explain_attn", *map(str, arguments),
            "--import", str(tools["inject"]),
        ],
        capture_output=True, text=True, cwd=cwd, timeout=300, check=False,
        env=_user_environment(**fault),
    )  # fmt: skip
    return result


def _assert_no_leftovers(folder):
    hidden = [p.name for p in Path(folder).iterdir() if ".partial-" in p.name]
    assert hidden == []


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_train_killed_in_an_epoch_then_resumed(
    signal_name, tools, trained, tmp_path
):
    for path in trained.iterdir():
        shutil.copy2(path, tmp_path / path.name)
    before = _visible(tmp_path)
    arguments = _train_arguments(
        tools, tmp_path / "model.keras", "--resume", epochs=3
    )
    result = _killed(
        arguments, tools, tmp_path, FAULT_SIGNAL=signal_name,
        FAULT_AT="explain_attn.models.progress:TrainingProgress.on_epoch_end",
        FAULT_CALL=2,
    )  # fmt: skip
    if signal_name == "SIGKILL":
        assert result.returncode == -signal.SIGKILL
    else:
        assert result.returncode == 130, result.stderr
        line = _one_line(result.stderr, "Interrupted (Ctrl-C) during training")
        assert f"the earlier {tmp_path / 'model.keras'}, unchanged" in line
    assert _visible(tmp_path) == before | {
        k: v for k, v in _visible(tmp_path).items() if "model.backup" in k
    }
    assert (tmp_path / "model.backup" / "progress.json").is_file()

    resumed = _invoke(arguments)
    assert resumed.exit_code == 0, resumed.output
    assert "Epoch 2/3" in resumed.output and "Epoch 1/3" not in resumed.output
    record = json.loads((tmp_path / "model.json").read_text())
    assert record["epochs"] == 3
    assert all(len(v) == 3 for v in record["history"].values())
    progress_before_kill = record["training_seconds"]
    assert progress_before_kill > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.json", "model.keras", "model.record.npz",
    ]  # fmt: skip
    from explain_attn.models.recorder import load_record

    epochs = load_record(tmp_path / "model.record.npz").epoch
    np.testing.assert_array_equal(epochs, [0.0, 1.0, 2.0, 3.0])


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault",
    [
        # Ctrl-C while the model file is written.
        {"FAULT_AT": "keras:Model.save", "FAULT_SIGNAL": "SIGINT"},
        # A kill between the renames of the set: the next run completes it.
        {
            "FAULT_AT": "os:replace",
            "FAULT_MATCH": "model.json",
            "FAULT_SIGNAL": "SIGKILL",
        },
    ],
    ids=["interrupt-saving", "kill-between-renames"],
)
def test_train_stopped_while_saving(fault, tools, trained, tmp_path):
    for path in trained.iterdir():
        shutil.copy2(path, tmp_path / path.name)
    before = _visible(tmp_path)
    arguments = _train_arguments(tools, tmp_path / "model.keras")
    result = _killed(arguments, tools, tmp_path, **fault)
    if fault["FAULT_SIGNAL"] == "SIGINT":
        assert result.returncode == 130, result.stderr
        line = _one_line(
            result.stderr, f"Interrupted (Ctrl-C) during saving {tmp_path}"
        )
        assert "Finished before: training for 1 epoch(s)" in line
        assert f"the earlier {tmp_path / 'model.json'}, unchanged" in line
        assert _visible(tmp_path) == before
    else:
        assert result.returncode == -signal.SIGKILL
        # model.keras is new, model.json not yet: the rerun completes it.
        assert _visible(tmp_path)["model.keras"] != before["model.keras"]
        from explain_attn.writing import clean_stale

        clean_stale(tmp_path / "model.keras")
        after = _visible(tmp_path)
        assert after.keys() == before.keys()
        assert all(after[name] != before[name] for name in after)
        _assert_no_leftovers(tmp_path)
    rerun = _invoke(arguments)
    assert rerun.exit_code == 0, rerun.output
    _assert_no_leftovers(tmp_path)


@pytest.mark.slow
def test_report_killed_while_evaluating(report_command, tools, tmp_path):
    output = tmp_path / "report.html"
    output.write_text("earlier html")
    output.with_suffix(".json").write_text("earlier json")
    before = _snapshot(tmp_path)
    arguments = [*report_command, "--no-faithfulness", "--output", output]
    result = _killed(
        arguments, tools, tmp_path, FAULT_SIGNAL="SIGKILL",
        FAULT_AT="explain_attn.report.build:evaluate_parts",
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL
    assert _snapshot(tmp_path) == before
    rerun = _invoke(arguments)
    assert rerun.exit_code == 0, rerun.output
    assert json.loads(output.with_suffix(".json").read_text())["models"]


@pytest.mark.slow
def test_maps_killed_while_writing(report_inputs, tools, tmp_path):
    output = tmp_path / "maps"
    arguments = [
        "maps", report_inputs["attention"], "--data", report_inputs["data"],
        "--grad-cam", "--batch-size", "4", "--output", output,
    ]  # fmt: skip
    assert _invoke(arguments).exit_code == 0
    before = _visible(tmp_path)
    result = _killed(
        arguments, tools, tmp_path, FAULT_SIGNAL="SIGKILL",
        FAULT_AT="explain_attn.explanations.export:reserve", FAULT_CALL=3,
    )  # fmt: skip
    assert result.returncode == -signal.SIGKILL
    assert _visible(tmp_path) == before
    assert any(".partial-" in p.name for p in tmp_path.iterdir())
    rerun = _invoke(arguments)
    assert rerun.exit_code == 0, rerun.output
    _assert_no_leftovers(tmp_path)
    assert _visible(tmp_path).keys() == before.keys()


def test_interrupted_maps_say_what_is_kept(
    report_inputs, tmp_path, monkeypatch
):
    output = tmp_path / "maps.npz"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez_compressed", interrupted)
    result = _invoke(
        [
            "maps", report_inputs["attention"], "--data",
            report_inputs["data"], "--limit", "4", "--output", output,
        ]
    )  # fmt: skip
    assert result.exit_code == 130
    line = _one_line(result.stderr, "Interrupted (Ctrl-C). Kept: no ")
    assert line == f"Interrupted (Ctrl-C). Kept: no {output}."
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------- damaged cache


def _damage_meta(change):
    def damage(entry):
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps(change(meta)))

    return damage


def _truncate(name, keep=500):
    def damage(entry):
        path = entry / name
        path.write_bytes(path.read_bytes()[:keep])

    return damage


DAMAGES = {
    "meta is a list": (_damage_meta(lambda m: []), "holds a list"),
    "meta lacks history": (
        _damage_meta(lambda m: {k: v for k, v in m.items() if k != "history"}),
        "no valid 'history'",
    ),
    "history of strings": (
        _damage_meta(lambda m: {**m, "history": {"loss": ["x"]}}),
        "no valid 'history'",
    ),
    "another recipe": (
        _damage_meta(
            lambda m: {**m, "settings": {**m["settings"], "recipe": "old"}}
        ),
        "other settings or another recipe",
    ),
    "garbled meta": (
        lambda entry: (entry / "meta.json").write_text("{not json"),
        "Expecting property name",
    ),
    "truncated model": (_truncate("model.keras"), "model.keras is truncated"),
    "truncated record": (_truncate("record.npz"), "record.npz is truncated"),
    "missing record": (
        lambda entry: (entry / "record.npz").unlink(),
        "record.npz is missing",
    ),
}


@pytest.fixture(scope="module")
def cached_entry(tmp_path_factory):
    """A sound cache entry of a tiny demo model, and how to reach it."""
    from explain_attn.data import load_dataset
    from explain_attn.report.cache import train_or_load

    folder = tmp_path_factory.mktemp("cache_data")
    rng = np.random.default_rng(5)
    np.savez(
        folder / "d.npz",
        images=rng.random((16, 12, 12, 3), dtype=np.float32),
        labels=np.arange(16) % 2,
    )
    data = load_dataset(str(folder / "d.npz"))
    settings = {
        "epochs": 1, "seed": 0, "batch_size": 8, "learning_rate": 1e-3,
        "verbose": 0, "cache_dir": folder / "cache",
    }  # fmt: skip
    train_or_load("small_convnet", data, **settings)
    (entry,) = (folder / "cache").iterdir()
    return data, settings, entry


@pytest.mark.parametrize("kind", list(DAMAGES))
def test_a_damaged_cache_entry_is_retrained(kind, cached_entry, tmp_path):
    from explain_attn.report.cache import train_or_load

    data, settings, sound = cached_entry
    cache = tmp_path / "cache"
    shutil.copytree(sound, cache / sound.name)
    damage, reason = DAMAGES[kind]
    damage(cache / sound.name)
    said = []
    settings = {**settings, "cache_dir": cache, "say": said.append}
    model, info = train_or_load("small_convnet", data, **settings)
    assert info["source"] == "trained"
    (line,) = said
    assert line.startswith(f"Cache entry {cache / sound.name} is damaged (")
    assert reason in line and line.endswith("): training it again.")
    # Replaced whole: the next call reads it, and nothing else is left.
    _, again = train_or_load("small_convnet", data, **settings)
    assert again["source"] == "cache"
    assert [p.name for p in cache.iterdir()] == [sound.name]
    assert model.count_params() > 0


def test_a_full_disk_while_caching_says_what_is_kept(
    cached_entry, tmp_path, monkeypatch
):
    from explain_attn.report.cache import train_or_load

    data, settings, sound = cached_entry
    cache = tmp_path / "cache"
    _fail_on(monkeypatch, keras.Model, "save")
    with pytest.raises(ValueError) as raised:
        train_or_load("small_convnet", data, **{**settings, "cache_dir": cache})
    message = str(raised.value)
    assert message.startswith(f"Cannot write {str(cache / sound.name)!r}: ")
    assert "the model trained but was not cached" in message
    assert [p.name for p in cache.iterdir()] == []


# ----------------------------------------------- unreadable data entries


@pytest.mark.parametrize("entry", ["loop", "broken-link"])
def test_an_unreadable_class_entry_is_an_error_naming_it(
    entry, report_inputs, tmp_path
):
    from PIL import Image

    images = tmp_path / "data" / "images"
    for name in ("a", "b"):
        (images / name).mkdir(parents=True)
        for index in range(2):
            pixels = np.full((16, 16, 3), 40 * index, np.uint8)
            Image.fromarray(pixels).save(images / name / f"{index}.png")
    bad = images / "c"
    if entry == "loop":
        bad.symlink_to(bad)
    else:
        bad.symlink_to(tmp_path / "nowhere")
    output = tmp_path / "maps.npz"
    result = _invoke(
        [
            "maps", report_inputs["attention"], "--data", tmp_path / "data",
            "--output", output,
        ]
    )  # fmt: skip
    assert result.exit_code == 2
    line = _one_line(result.stderr, f"Error: Cannot read {str(bad)!r} in ")
    reason = (
        "Too many levels of symbolic links"
        if entry == "loop"
        else ("No such file or directory")
    )
    assert reason in line
    assert not output.exists()


@pytest.mark.slow
def test_a_bad_image_read_by_tf_data_is_one_line(report_inputs, tmp_path):
    """A corrupt image sorted after good ones fails inside tf.data, whose
    log line (with a Python traceback) reached stderr before the error."""
    from PIL import Image

    for name in ("a", "b"):
        folder = tmp_path / "data" / "images" / name
        folder.mkdir(parents=True)
        for index in range(3):
            pixels = np.full((16, 16, 3), 40 * index, np.uint8)
            Image.fromarray(pixels).save(folder / f"{index}.png")
    whole = (folder / "0.png").read_bytes()
    (folder / "z.png").write_bytes(whole[: len(whole) // 2])
    result = subprocess.run(
        [
            sys.executable, "-m", "explain_attn", "maps",
            str(report_inputs["attention"]), "--data", str(tmp_path / "data"),
            "--output", str(tmp_path / "maps.npz"),
        ],
        capture_output=True, text=True, env=_user_environment(),
        timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    line = _one_line(result.stderr, "Error: Cannot read image ")
    assert str(folder / "z.png") in line
    assert not (tmp_path / "maps.npz").exists()


BAD_NAME_FACTORY = """
import keras


def build(input_shape, num_classes):
    inputs = keras.Input(input_shape)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv:1")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)
"""


def test_a_tensorflow_error_is_one_line_without_frames(tools, tmp_path):
    """TensorFlow rejects the layer name inside a traced function; its
    message held Python stack frames and tensor values."""
    (tmp_path / "bad_name.py").write_text(BAD_NAME_FACTORY)
    output = tmp_path / "model.keras"
    result = _invoke(
        [
            "train", "--data", tools["data"], "--model-factory",
            f"{tmp_path / 'bad_name.py'}:build", "--epochs", "1",
            "--validation-split", "0", "--output", output,
        ]
    )  # fmt: skip
    assert result.exit_code == 2
    line = _one_line(result.stderr, "Error: TensorFlow failed in forward: ")
    assert "'conv:1' is not a valid scope name" in line
    assert len(line) <= 300
    assert "tf.Tensor" not in line and "line " not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_name.py"]
