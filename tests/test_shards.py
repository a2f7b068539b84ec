"""Sharded reports: shards merge into a single run's numbers, bit for bit;
bad parts and bad options are refused with one line; Dask runs the shards,
survives a killed worker and resumes."""

import io
import json
import os
import random
import shutil
import signal
import threading
import time

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from explain_attn import build_model, save_model
from explain_attn.cli import main
from explain_attn.progress import quiet
from explain_attn.report import report_from_sources, write_json
from explain_attn.report.contributions import Part, combine
from explain_attn.report.merge import merge_report
from explain_attn.report.schema import undeclared, validate
from explain_attn.report.shards import (
    ShardJob,
    complete_shards,
    part_name,
    part_record,
    read_parts,
    shard_range,
)

NUM_IMAGES = 16
CHUNK = 4  # 4 chunks of 4 images: shards hold 1 or 2 chunks.


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Two tiny saved models and 16 images of 16 x 16 with masks."""
    folder = tmp_path_factory.mktemp("shard_inputs")
    keras.utils.set_random_seed(7)
    paths = {}
    for role, architecture in (
        ("attention", "small_attention"),
        ("baseline", "small_convnet"),
    ):
        model = build_model(
            architecture, input_shape=(16, 16, 3), num_classes=2
        )
        paths[role] = str(folder / f"{role}.keras")
        save_model(model, paths[role])
    rng = np.random.default_rng(8)
    images = rng.random((NUM_IMAGES, 16, 16, 3), dtype=np.float32)
    masks = np.zeros((NUM_IMAGES, 16, 16), bool)
    for index in range(NUM_IMAGES):
        row, column = rng.integers(0, 10, size=2)
        masks[index, row : row + 6, column : column + 6] = True
    paths["data"] = str(folder / "data.npz")
    np.savez(
        paths["data"], images=images, labels=np.arange(NUM_IMAGES) % 2,
        masks=masks,
    )  # fmt: skip
    return paths


def _options(inputs, **changes):
    return {
        "attention_models": [inputs["attention"]],
        "baseline_model": inputs["baseline"],
        "num_examples": 2, "seed": 0, "verbose": 0, "faithfulness": "off",
        "chunk_size": CHUNK, **changes,
    }  # fmt: skip


def _numbers(report, path):
    """The report's JSON without what a merge adds or words differently."""
    write_json(report, path)
    data = json.loads(path.read_text(encoding="utf-8"))
    data.pop("shards", None)
    data["settings"].pop("command_line")
    return data


def _run_shards(inputs, folder, num_shards, order=None, **changes):
    for index in order or range(num_shards):
        job = ShardJob(num_shards, index, folder)
        path = report_from_sources(
            inputs["data"], **_options(inputs, **changes), shard=job
        )
        assert path == folder / part_name(index, num_shards)


@pytest.fixture(scope="module")
def single(inputs, tmp_path_factory):
    report = report_from_sources(inputs["data"], **_options(inputs))
    return _numbers(report, tmp_path_factory.mktemp("single") / "r.json")


@pytest.fixture(scope="module")
def three_parts(inputs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("three") / "parts"
    _run_shards(inputs, folder, 3, order=[2, 0, 1])
    return folder


def test_shard_ranges_are_runs_of_whole_chunks():
    # 10 images in chunks of 4: [0, 4), [4, 8), [8, 10).
    assert [shard_range(10, 4, 2, i) for i in range(2)] == [(0, 4), (4, 10)]
    assert [shard_range(10, 4, 3, i) for i in range(3)] == [
        (0, 4), (4, 8), (8, 10),
    ]  # fmt: skip
    five = [shard_range(10, 4, 5, i) for i in range(5)]
    assert five == [(0, 0), (0, 4), (4, 4), (4, 8), (8, 10)]


def test_parts_combine_in_any_order():
    rng = np.random.default_rng(0)
    parts = [
        Part(s, s + 3, {("x",): rng.random(3)}, {("n",): np.array([[s]])})
        for s in (0, 3, 6, 9)
    ]
    whole = combine(parts)
    shuffled = combine(random.Random(1).sample(parts, 4))
    np.testing.assert_array_equal(whole.rows["x",], shuffled.rows["x",])
    assert whole.blocks["n",].ravel().tolist() == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="consecutive images"):
        combine([parts[0], parts[2]])


def test_two_and_three_shards_equal_the_single_run(
    inputs, single, three_parts, tmp_path
):
    two = tmp_path / "two"
    _run_shards(inputs, two, 2, order=[1, 0])
    for folder, count in ((two, 2), (three_parts, 3)):
        merged = merge_report(folder, verbose=0)
        assert _numbers(merged, tmp_path / f"{count}.json") == single
        written = json.loads((tmp_path / f"{count}.json").read_text("utf-8"))
        assert validate(written) == []
        shards = merged.data["shards"]
        assert [s["index"] for s in shards] == list(range(count))
        covered = [i for s in shards for i in range(s["start"], s["stop"])]
        assert covered == list(range(NUM_IMAGES))  # every image once


def test_rerunning_a_shard_replaces_its_part(inputs, three_parts, tmp_path):
    folder = tmp_path / "parts"
    shutil.copytree(three_parts, folder)
    before = (folder / part_name(1, 3)).read_bytes()
    _run_shards(inputs, folder, 3, order=[1])
    assert sorted(p.name for p in folder.iterdir()) == [
        part_name(i, 3) for i in range(3)
    ]
    assert len((folder / part_name(1, 3)).read_bytes()) == len(before)


def _merge_error(folder, tmp_path):
    output = tmp_path / "out" / "report.html"
    output.parent.mkdir(exist_ok=True)
    result = CliRunner().invoke(
        main, ["merge", str(folder), "--output", str(output)]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert list(output.parent.iterdir()) == []  # nothing written
    return lines[0]


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_merge_shows_its_progress_on_a_terminal_only(
    three_parts, monkeypatch, tmp_path
):
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    read_parts(three_parts)
    lines = terminal.getvalue().split("\r")
    assert "merge: reading parts" in lines[1] and "1/3 parts" in lines[1]
    assert "3/3 parts · 0 s left" in lines[-1]
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with quiet():
        read_parts(three_parts)
    assert terminal.getvalue() == ""
    # The command takes --quiet (here with no part: its one-line error).
    result = CliRunner().invoke(main, ["merge", str(tmp_path), "--quiet"])
    assert result.exit_code == 2 and "holds no part" in result.stderr


def test_every_bad_part_is_refused_with_one_line(inputs, three_parts, tmp_path):
    cases = {}
    for case in ("missing", "duplicate", "truncated", "foreign"):
        cases[case] = tmp_path / case
        shutil.copytree(three_parts, cases[case])
    (cases["missing"] / part_name(1, 3)).unlink()
    shutil.copy(
        cases["duplicate"] / part_name(2, 3),
        cases["duplicate"] / "shard-00002-of-00003-copy.npz",
    )
    truncated = cases["truncated"] / part_name(0, 3)
    truncated.write_bytes(truncated.read_bytes()[:200])
    (cases["foreign"] / part_name(1, 3)).unlink()
    _run_shards(inputs, cases["foreign"], 3, order=[1], seed=5)
    assert "shard 1 of 3 is missing" in _merge_error(cases["missing"], tmp_path)
    line = _merge_error(cases["duplicate"], tmp_path)
    assert "shard-00002-of-00003-copy.npz" in line and "both shard 2" in line
    line = _merge_error(cases["truncated"], tmp_path)
    assert part_name(0, 3) in line and "truncated" in line
    line = _merge_error(cases["foreign"], tmp_path)
    assert part_name(1, 3) in line and "another run" in line
    assert "holds no part" in _merge_error(tmp_path / "out", tmp_path)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--num-shards", "3", "--shard-index", "3"], "must be 0 to 2"),
        (["--num-shards", "2", "--shard-index", "-1"], "must be 0 to 1"),
        (["--num-shards", "0", "--shard-index", "0"], "at least 1"),
        (["--no-parts", "--shard-index", "0"], "need --parts"),
        (["--num-shards", "2"], "needs --shard-index"),
        (["--dask", "local:0"], "positive integer"),
    ],
)
def test_bad_shard_options_fail_with_one_line(
    inputs, tmp_path, arguments, expected
):
    parts = [] if "--no-parts" in arguments else ["--parts", str(tmp_path)]
    arguments = [a for a in arguments if a != "--no-parts"]
    result = CliRunner().invoke(
        main,
        ["report", "--data", inputs["data"], "--attention-model",
         inputs["attention"], "--baseline-model", inputs["baseline"],
         "--output", str(tmp_path / "r.html"), *parts, *arguments],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []


def test_dask_without_the_extra_names_it(inputs, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "distributed" else real(name, *a),
    )
    result = CliRunner().invoke(
        main,
        ["report", "--data", inputs["data"], "--attention-model",
         inputs["attention"], "--baseline-model", inputs["baseline"],
         "--dask", "local:2", "--parts", str(tmp_path / "p")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert 'pip install "explain-attn[dask]"' in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_an_unreachable_scheduler_fails_within_the_timeout(
    inputs, tmp_path, monkeypatch
):
    from explain_attn.report import distributed

    monkeypatch.setattr(distributed, "CONNECT_TIMEOUT", 2)
    started = time.monotonic()
    result = CliRunner().invoke(
        main,
        ["report", "--data", inputs["data"], "--attention-model",
         inputs["attention"], "--baseline-model", inputs["baseline"],
         "--dask", "tcp://127.0.0.1:9", "--parts", str(tmp_path / "p")],
    )  # fmt: skip
    assert time.monotonic() - started < 60
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cannot reach a Dask scheduler" in lines[0]
    assert "within 2 s" in lines[0]
    assert not (tmp_path / "p").exists()  # nothing written


def test_a_complete_run_is_not_run_again(inputs, three_parts, tmp_path):
    from explain_attn.report.distributed import dask_report

    folder = tmp_path / "parts"
    shutil.copytree(three_parts, folder)
    (folder / part_name(1, 3)).unlink()
    run = part_record(folder / part_name(0, 3))
    assert complete_shards(folder, run["fingerprint"], 3) == {0, 2}
    _run_shards(inputs, folder, 3, order=[1])
    # Every part there: no scheduler is contacted (this one is unreachable).
    report = dask_report(
        inputs["data"], address="tcp://127.0.0.1:9", num_shards=3,
        parts=folder, **_options(inputs),
    )  # fmt: skip
    assert len(report.data["shards"]) == 3
    assert undeclared(report.data) == []  # shards' keys too


def _kill_a_worker_when_a_part_appears(folder, known, killed):
    """Kills (SIGKILL) the process that writes the first new part, which
    is then running its next shard."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        for path in folder.glob("shard-*.npz"):
            if path.name in known:
                continue
            meta = part_record(path)
            os.kill(meta["worker"]["pid"], signal.SIGKILL)
            killed.append(meta["worker"]["pid"])
            return
        time.sleep(0.05)


def _dask_run(inputs, folder, address):
    from explain_attn.report.distributed import dask_report

    return dask_report(
        inputs["data"], address=address, num_shards=8, parts=folder,
        **_options(inputs, chunk_size=2),
    )  # fmt: skip


def _covered(report):
    shards = report.data["shards"]
    return [i for s in shards for i in range(s["start"], s["stop"])]


@pytest.mark.slow
def test_dask_equals_one_run_survives_a_killed_worker_and_resumes(
    inputs, tmp_path
):
    single = report_from_sources(
        inputs["data"], **_options(inputs, chunk_size=2)
    )
    expected = _numbers(single, tmp_path / "single.json")
    folder = tmp_path / "parts"
    # One cluster of 2 worker processes for both runs, by its address.
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True,
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        _run_twice(inputs, folder, cluster.scheduler_address, expected)


def _run_twice(inputs, folder, address, expected):
    report = _dask_run(inputs, folder, address)  # 8 shards
    assert _numbers(report, folder.parent / "dask.json") == expected
    workers = {s["pid"] for s in report.data["shards"]}
    assert len(workers) == 2 and os.getpid() not in workers
    assert _covered(report) == list(range(NUM_IMAGES))
    # Resume after losing three parts, killing a worker mid-run.
    for index in (5, 6, 7):
        (folder / part_name(index, 8)).unlink()
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    killed = []
    watcher = threading.Thread(
        target=_kill_a_worker_when_a_part_appears,
        args=(folder, set(stamps), killed),
    )
    watcher.start()
    report = _dask_run(inputs, folder, address)
    watcher.join()
    assert killed  # a worker was SIGKILLed after writing a part
    kept = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert all(kept[name] == stamp for name, stamp in stamps.items())
    assert _covered(report) == list(range(NUM_IMAGES))  # each image once
    rerun = {s["pid"] for s in report.data["shards"][5:]}
    assert killed[0] not in rerun  # its lost shards were run again
    assert _numbers(report, folder.parent / "resumed.json") == expected
