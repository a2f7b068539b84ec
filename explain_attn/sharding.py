"""Shards of a run over a data set, and the checks their parts pass.

What `explain-attn report` and `explain-attn maps` share when a run is cut
into shards: which images a shard takes (`shard_range`, one deterministic
split by image index for every source type and both commands), what its
part is called (`part_name`), the fingerprint a part carries
(`run_digest`: the options that change numbers, the models' weights and
the data's labels, shape and classes), the worker that wrote it
(`worker_record`) and the checks a merge makes on a folder of parts
(`check_parts`: one line naming a foreign, duplicated or missing part).
"""

import dataclasses
import hashlib
import json
import os
import socket
from pathlib import Path

import numpy as np

__all__ = [
    "ShardJob",
    "check_parts",
    "part_name",
    "parts_kind",
    "run_digest",
    "shard_range",
    "weights_digest",
    "worker_record",
]


def _check_count(name, value, low):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(
            f"{name} must be an integer. Received: {name}={value!r}"
        )
    if value < low:
        raise ValueError(
            f"{name} must be at least {low}. Received: {name}={value}"
        )


@dataclasses.dataclass(frozen=True)
class ShardJob:
    """Which shard to run and where its part goes.

    Args:
        num_shards: How many shards the images are cut into (at least 1).
        index: This shard, ``0`` to ``num_shards - 1``.
        parts: The folder of the parts (created if missing).
        run: The run's record (options, data and model paths), kept in the
            part.
    """

    num_shards: int
    index: int
    parts: Path
    run: dict = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        _check_count("num_shards", self.num_shards, 1)
        _check_count("shard_index", self.index, -(2**63))
        if not 0 <= self.index < self.num_shards:
            raise ValueError(
                f"--shard-index must be 0 to {self.num_shards - 1} (shards "
                "are numbered from 0). Received: "
                f"--shard-index {self.index} with --num-shards "
                f"{self.num_shards}"
            )

    @property
    def path(self):
        """The report's part: a file (``shard-...-of-....npz``)."""
        return Path(self.parts) / part_name(self.index, self.num_shards)

    @property
    def folder(self):
        """The maps' part: a folder (``shard-...-of-...``)."""
        return Path(self.parts) / part_name(
            self.index, self.num_shards, suffix=""
        )


def part_name(index, num_shards, *, suffix=".npz"):
    """``shard-00003-of-00008.npz``: the part of shard ``index`` (a
    report's file; with ``suffix=""`` the folder of the maps' part)."""
    return f"shard-{index:05d}-of-{num_shards:05d}{suffix}"


def shard_range(num_images, chunk_size, num_shards, index):
    """``(start, stop)``: the images of shard ``index`` of ``num_shards``.

    The images are cut into chunks of ``chunk_size`` (the report's chunks,
    the maps' batches), as one pass cuts them; shard ``i`` gets chunks
    ``floor(i K / N)`` to ``floor((i + 1) K / N) - 1`` of the ``K`` chunks.
    With more shards than chunks, some shards are empty.
    """
    num_chunks = -(-num_images // chunk_size)
    first = index * num_chunks // num_shards
    last = (index + 1) * num_chunks // num_shards
    return (
        min(first * chunk_size, num_images),
        min(last * chunk_size, num_images),
    )


def weights_digest(model):
    """SHA-256 hex digest of a Keras model's weights, in order."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(weight.numpy()).tobytes())
    return digest.hexdigest()


def run_digest(record, labels):
    """SHA-256 hex digest of a run's ``record`` (JSON-ready: options,
    models' `weights_digest`, image count, shape and classes) and its
    ``labels``: the fingerprint every part of the run carries."""
    digest = hashlib.sha256()
    digest.update(json.dumps(record, sort_keys=True).encode())
    digest.update(np.asarray(labels, np.int64).tobytes())
    return digest.hexdigest()


def worker_record():
    """``{"host", "pid"}`` of this process."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def parts_kind(folder):
    """``"report"`` (``shard-*.npz`` files) or ``"maps"`` (``shard-*``
    folders): what the parts in ``folder`` are.

    Raises:
        ValueError: For a missing folder, one without parts, or one
            holding parts of both kinds.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(
            f"The parts folder {str(folder)!r} does not exist. Give the "
            "--parts folder the shards wrote to."
        )
    found = list(folder.glob("shard-*"))
    kinds = {"maps" if path.is_dir() else "report" for path in found}
    if len(kinds) > 1:
        raise ValueError(
            f"The parts folder {str(folder)!r} holds parts of a report "
            "(shard-*.npz) and of maps (shard-* folders). Keep one run's "
            "parts in a folder."
        )
    if not kinds:
        raise ValueError(
            f"The parts folder {str(folder)!r} holds no part (shard-*). "
            "Run the shards with --parts first."
        )
    return kinds.pop()


def check_parts(found):
    """Refuses foreign, duplicated and missing parts, naming one.

    Args:
        found: ``[(path, record)]``, one per part; each record has the
            run's ``fingerprint``, ``num_shards`` and the shard's ``index``.

    Raises:
        ValueError: One line naming the first part of another run (other
            fingerprint or shard count), two parts of one shard, or the
            first missing shard.
    """
    first_path, first = found[0]
    seen = {}
    for path, meta in found:
        if (meta["fingerprint"], meta["num_shards"]) != (
            first["fingerprint"],
            first["num_shards"],
        ):
            raise ValueError(
                f"The part {path.name} belongs to another run (other "
                f"models, data or settings) than {first_path.name}. Keep "
                "one run's parts in a folder."
            )
        if meta["index"] in seen:
            raise ValueError(
                f"The parts {seen[meta['index']].name} and {path.name} are "
                f"both shard {meta['index']}. Remove one of them."
            )
        seen[meta["index"]] = path
    missing = sorted(set(range(first["num_shards"])) - set(seen))
    if missing:
        suffix = first_path.suffix
        raise ValueError(
            f"The part of shard {missing[0]} of {first['num_shards']} is "
            f"missing ({len(missing)} missing in all: "
            f"{part_name(missing[0], first['num_shards'], suffix=suffix)}"
            "). Run the missing shards with the same options and --parts, "
            "then merge."
        )
