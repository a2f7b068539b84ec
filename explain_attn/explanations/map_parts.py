"""The maps of a sharded run, merged into the folder of a single run.

``explain-attn maps ... --num-shards N --shard-index I --parts DIR``
writes shard ``I``'s rows of every map (a run of whole batches,
`explain_attn.sharding.shard_range`) as the part folder
``DIR/shard-IIIII-of-NNNNN`` (`explain_attn.explanations.export`). A part
is a maps folder of its rows, whose ``manifest.json`` (format
`PART_FORMAT`) holds the run's fingerprint, the shard, its images, the
worker (host, pid) that wrote it, and the manifest of the whole run.

`merge_maps` checks the parts (`explain_attn.sharding.check_parts`: one
line naming a missing, duplicated or foreign part; a truncated one is
named too), then writes the maps folder, streaming each part's rows into
place (`FolderWriter`, the writer of a single run): the same files with
the same bytes, and the same ``manifest.json`` plus a ``"shards"`` list
(each shard's ``index``, ``start``, ``stop``, ``host`` and ``pid``).
"""

import json
import types
from pathlib import Path

import numpy as np

from explain_attn.explanations.export import (
    MANIFEST,
    PART_FORMAT,
    FolderWriter,
    MapOutput,
    check_output,
)
from explain_attn.sharding import check_parts

__all__ = ["merge_maps", "read_map_parts"]

BYTES_PER_COPY = 64 << 20
"""About this many bytes of a part's rows are copied at once (memory stays
flat whatever the number of images)."""


def _truncated(path):
    return ValueError(
        f"The part {path.name} in {path.parent} is truncated or not an "
        "explain-attn maps part. Run its shard again (or remove it)."
    )


def _record(path):
    try:
        record = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise _truncated(path) from None
    if not isinstance(record, dict) or record.get("format") != PART_FORMAT:
        raise _truncated(path)
    return record


def _arrays(path, record):
    """The part's arrays, memory-mapped, each checked to hold its rows."""
    manifest = record["manifest"]
    rows = record["stop"] - record["start"]
    files = [manifest["labels"], manifest["predictions"]]
    if rows:
        files += [entry["file"] for entry in manifest["maps"]]
    arrays = {}
    for name in files:
        try:
            arrays[name] = np.load(path / name, mmap_mode="r")
        except (OSError, ValueError):
            raise _truncated(path) from None
        if len(arrays[name]) != rows:
            raise _truncated(path)
    return arrays


def read_map_parts(folder):
    """``[(record, arrays)]``: every maps part in ``folder``, checked, in
    shard order.

    Raises:
        ValueError: (one line naming the part) for no part, a truncated or
            foreign part, two parts of one shard, or a missing shard.
    """
    paths = sorted(p for p in Path(folder).glob("shard-*") if p.is_dir())
    if not paths:
        raise ValueError(
            f"The parts folder {str(folder)!r} holds no maps part "
            "(shard-* folders). Run the shards with --parts first."
        )
    found = [(path, _record(path)) for path in paths]
    check_parts(found)
    found.sort(key=lambda item: item[1]["index"])
    return [(record, _arrays(path, record)) for path, record in found]


class _MergeWriter(FolderWriter):
    """A `FolderWriter` whose manifest is the parts' (plus ``shards``)."""

    def __init__(self, path, parts):
        written = (r for r, _ in parts if r["stop"] > r["start"])
        self.recorded = dict(next(written, parts[0][0])["manifest"])
        labels = np.concatenate(
            [arrays[self.recorded["labels"]] for _, arrays in parts]
        )
        notes = dict.fromkeys(
            note for record, _ in parts for note in record["manifest"]["notes"]
        )
        self.recorded["notes"] = list(notes)
        self.recorded["shards"] = [
            {key: record[key] for key in ("index", "start", "stop")}
            | record["worker"]
            for record, _ in parts
        ]
        dataset = types.SimpleNamespace(
            labels=labels, class_names=self.recorded["class_names"]
        )
        outputs = [
            MapOutput(Path(e["file"]).stem, e["method"], e["layer"], None)
            for e in self.recorded["maps"]
        ]
        super().__init__(path, dataset, outputs)

    def manifest(self, shapes):
        return self.recorded


def merge_maps(parts, output):
    """Writes the maps folder ``output`` from the parts in ``parts``.

    Args:
        parts: The parts folder of ``explain-attn maps --parts``.
        output: The maps folder to write (new, empty or earlier maps).

    Returns:
        The merged manifest (a dict).

    Raises:
        ValueError: For a bad ``output`` (`check_output`; it must be a
            folder), or a bad part (`read_map_parts`). Nothing is written
            then.
    """
    if check_output(output) != "folder":
        raise ValueError(
            "The merge of maps writes a folder: --output must name one (no "
            f"suffix, or ending in '/'). Received: --output {output}"
        )
    found = read_map_parts(parts)
    writer = _MergeWriter(output, found)
    files = [entry["file"] for entry in writer.recorded["maps"]]
    with writer:
        for record, arrays in found:
            if record["stop"] == record["start"]:
                continue  # An empty shard (more shards than batches).
            predictions = arrays[writer.recorded["predictions"]]
            maps = [arrays[name] for name in files]
            row = sum(a[:1].nbytes for a in [predictions, *maps]) or 1
            step = max(1, BYTES_PER_COPY // row)
            for first in range(0, len(predictions), step):
                writer.write(
                    record["start"] + first,
                    predictions[first : first + step],
                    [values[first : first + step] for values in maps],
                )
    return writer.recorded
