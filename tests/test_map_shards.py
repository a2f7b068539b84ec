"""Sharded `explain-attn maps`: shards run in any order merge into the maps
folder of a single run, byte for byte; bad parts and bad options are
refused with one line, exit 2, nothing written."""

import json
import random
import shutil

import pytest
from click.testing import CliRunner

from explain_attn import load_model
from explain_attn.cli import main
from explain_attn.data import load_dataset
from explain_attn.explanations.export import export_maps
from explain_attn.explanations.inputs import open_for_model
from explain_attn.sharding import ShardJob, part_name

BATCH = 4  # 12 images: 3 batches, so 4 shards leave one empty.
# As the command line passes them (it resolves the input scale first).
OPTIONS = {"methods": ["grad_cam"], "batch_size": BATCH, "input_scale": "unit"}


@pytest.fixture(scope="module")
def model(report_inputs):
    return load_model(report_inputs["attention"])


@pytest.fixture(scope="module")
def single(model, report_inputs, tmp_path_factory):
    """The maps folder of one run over the streamed .npz source."""
    source, _ = open_for_model(model, str(report_inputs["data"]))
    folder = tmp_path_factory.mktemp("single") / "maps"
    export_maps(model, source, folder, **OPTIONS)
    return folder


def _run_shards(model, data, parts, num_shards, order, **changes):
    for index in order:
        job = ShardJob(num_shards, index, parts)
        export_maps(model, data, None, shard=job, **(OPTIONS | changes))


@pytest.fixture(scope="module")
def three_parts(model, report_inputs, tmp_path_factory):
    source, _ = open_for_model(model, str(report_inputs["data"]))
    parts = tmp_path_factory.mktemp("three") / "parts"
    _run_shards(model, source, parts, 3, [2, 0, 1])
    return parts


def _merge(parts, output):
    result = CliRunner().invoke(
        main, ["merge", str(parts), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == str(output)


def _assert_same_folder(single, merged, num_shards):
    names = sorted(p.name for p in single.iterdir())
    assert sorted(p.name for p in merged.iterdir()) == names
    for name in names:
        if name.endswith(".npy"):
            assert (merged / name).read_bytes() == (single / name).read_bytes()
    expected = json.loads((single / "manifest.json").read_text("utf-8"))
    manifest = json.loads((merged / "manifest.json").read_text("utf-8"))
    shards = manifest.pop("shards")
    assert list(manifest) == list(expected) and manifest == expected
    assert [s["index"] for s in shards] == list(range(num_shards))
    covered = [i for s in shards for i in range(s["start"], s["stop"])]
    assert covered == list(range(12))  # every image once, in order


def test_two_three_and_four_shards_merge_into_the_single_run(
    model, report_inputs, single, three_parts, tmp_path
):
    # In memory for 2 and 4 shards, streamed for 3: one split for both.
    dataset = load_dataset(str(report_inputs["data"]))
    for num_shards in (2, 4):
        order = random.Random(num_shards).sample(range(num_shards), num_shards)
        _run_shards(
            model, dataset, tmp_path / f"{num_shards}", num_shards, order
        )
    for num_shards, parts in (
        (2, tmp_path / "2"),
        (3, three_parts),
        (4, tmp_path / "4"),
    ):
        _merge(parts, tmp_path / f"merged{num_shards}")
        _assert_same_folder(
            single, tmp_path / f"merged{num_shards}", num_shards
        )
    # Shards are runs of whole batches: the 4th of 4 shards holds none.
    empty = json.loads(
        (
            tmp_path / "4" / part_name(0, 4, suffix="") / "manifest.json"
        ).read_text("utf-8")
    )
    assert (empty["start"], empty["stop"]) == (0, 0)


def test_shards_and_merge_through_the_command_line(
    report_inputs, single, tmp_path
):
    command = [
        "maps",
        str(report_inputs["attention"]),
        "--data",
        str(report_inputs["data"]),
        "--method",
        "grad_cam",
        "--batch-size",
        str(BATCH),
        "--num-shards",
        "2",
    ]
    for index in (1, 0, 1):  # Shard 1 twice: the rerun replaces its part.
        result = CliRunner().invoke(
            main,
            [
                *command,
                "--shard-index",
                str(index),
                "--parts",
                str(tmp_path / "parts"),
            ],
        )
        assert result.exit_code == 0, result.output
        part = tmp_path / "parts" / part_name(index, 2, suffix="")
        assert result.output.splitlines()[-1] == f"Part: {part}"
    assert sorted(p.name for p in (tmp_path / "parts").iterdir()) == [
        part_name(0, 2, suffix=""),
        part_name(1, 2, suffix=""),
    ]
    _merge(tmp_path / "parts", tmp_path / "merged")
    _assert_same_folder(single, tmp_path / "merged", 2)


def _merge_error(parts, output):
    result = CliRunner().invoke(
        main, ["merge", str(parts), "--output", str(output)]
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert not output.exists()  # nothing written
    assert not any(p.name.startswith(".") for p in output.parent.iterdir())
    return lines[0]


def test_every_bad_maps_part_is_refused_with_one_line(
    model, report_inputs, three_parts, tmp_path
):
    cases = {}
    for case in (
        "missing",
        "duplicate",
        "truncated",
        "unfinished",
        "foreign",
        "mixed",
    ):
        cases[case] = tmp_path / case
        shutil.copytree(three_parts, cases[case])
    name = [part_name(i, 3, suffix="") for i in range(3)]
    shutil.rmtree(cases["missing"] / name[1])
    shutil.copytree(
        cases["duplicate"] / name[2], cases["duplicate"] / f"{name[2]}-copy"
    )
    array = cases["truncated"] / name[0] / "map_0.npy"
    array.write_bytes(array.read_bytes()[:200])
    (cases["unfinished"] / name[2] / "manifest.json").unlink()
    shutil.rmtree(cases["foreign"] / name[1])
    source, _ = open_for_model(model, str(report_inputs["data"]))
    _run_shards(model, source, cases["foreign"], 3, [1], cam_class=1)
    (cases["mixed"] / part_name(0, 3)).write_bytes(b"a report's part")
    output = tmp_path / "out" / "maps"
    output.parent.mkdir()

    line = _merge_error(cases["missing"], output)
    assert "shard 1 of 3 is missing" in line and name[1] in line
    line = _merge_error(cases["duplicate"], output)
    assert f"{name[2]}-copy" in line and "both shard 2" in line
    line = _merge_error(cases["truncated"], output)
    assert name[0] in line and "truncated" in line
    line = _merge_error(cases["unfinished"], output)
    assert name[2] in line and "truncated" in line
    line = _merge_error(cases["foreign"], output)
    assert name[1] in line and "another run" in line
    assert "of a report" in _merge_error(cases["mixed"], output)
    npz = tmp_path / "out" / "maps.npz"
    assert "writes a folder" in _merge_error(three_parts, npz)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (["--num-shards", "2", "--shard-index", "2"], "must be 0 to 1"),
        (["--num-shards", "0", "--shard-index", "0"], "at least 1"),
        (["--no-parts", "--shard-index", "0"], "--shard-index needs --parts"),
        (["--num-shards", "2"], "needs --shard-index (run one shard)."),
    ],
)
def test_bad_maps_shard_options_fail_with_one_line(
    report_inputs, tmp_path, arguments, expected
):
    parts = [] if "--no-parts" in arguments else ["--parts", str(tmp_path)]
    arguments = [a for a in arguments if a != "--no-parts"]
    result = CliRunner().invoke(
        main,
        [
            "maps",
            str(report_inputs["attention"]),
            "--data",
            str(report_inputs["data"]),
            "--output",
            str(tmp_path / "maps"),
            *parts,
            *arguments,
        ],
    )
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr
    assert list(tmp_path.iterdir()) == []
