"""Shards of the report's pass, written as parts and merged exactly.

Shard ``I`` of ``N`` evaluates a run of whole chunks of the test set
(`shard_range`: the same split for every source type, by image index), and
writes what its images contribute (`explain_attn.report.contributions`)
to one part file, ``shard-IIIII-of-NNNNN.npz`` in the parts folder
(`part_name`), atomically: a reader sees a whole part or none, and
rerunning a shard replaces its part. A merge reads every part, refuses a
missing, duplicated, unreadable or foreign one with one line naming it,
and combines them in image order; since a shard is a run of the chunks a
single pass would cut, the merged numbers are a single run's, bit for bit.

A part records the run it belongs to (`run_fingerprint`: the options that
change numbers, the models' weights and the test data's labels, shape
and classes), the run's options (so that the merge can load the same
models and data again for the gallery and the faithfulness checks), its
images and the worker (host, pid) that wrote it.

A part also holds the exact Poisson-bootstrap sums of its images for
every interval of the report (`explain_attn.report.interval_sums`): the
merge adds them and never draws the counts of all images at once.

Files hold NumPy arrays only (``np.savez``, read without pickle): rows
``r<k>``, blocks ``b<k>``, and the sums' digits ``s<k>`` and counts
``c<k>``, with their keys in the JSON record ``meta``.
"""

import dataclasses
import json
import zipfile
from pathlib import Path

import numpy as np

from explain_attn.metrics import BootstrapSums
from explain_attn.progress import progress_bar
from explain_attn.report.baselines import baseline_sums
from explain_attn.report.contributions import Part, combine
from explain_attn.report.evaluate import evaluate_parts
from explain_attn.report.interval_sums import (
    add_sums,
    interval_sums,
    interval_vectors,
)
from explain_attn.report.observed import (
    observed_from,
    report_chunk_size,
    report_contributors,
)
from explain_attn.report.summaries import report_bootstrap
from explain_attn.sharding import (
    ShardJob,
    check_parts,
    part_name,
    run_digest,
    shard_range,
    weights_digest,
    worker_record,
)
from explain_attn.writing import atomic_path

__all__ = [
    "PART_FORMAT",
    "Merged",
    "ShardJob",
    "complete_shards",
    "evaluate_shard",
    "numbers_options",
    "part_name",
    "part_record",
    "read_part",
    "read_parts",
    "run_fingerprint",
    "shard_chunks",
    "shard_sums",
    "shard_range",
    "write_part",
]

PART_FORMAT = "explain-attn part 2"
"""The ``format`` of a part's record."""


def shard_chunks(test, start, stop, chunk_size):
    """Yields ``(images, labels, masks)`` chunks of images ``start`` to
    ``stop - 1`` of any source (``test.batches``: the chunks a single run's
    pass reads, since ``start`` is a multiple of ``chunk_size``)."""
    yield from test.batches(chunk_size, start=start, stop=stop)


def run_fingerprint(models, test, options):
    """SHA-256 hex digest of what a part's numbers depend on.

    Args:
        models: The report's models (their weights are digested, not their
            paths, which may differ between machines).
        test: The test data: its labels, image shape and class names (its
            images are not read again).
        options: The run's options that change numbers (JSON-ready).
    """
    record = {
        "options": options,
        "models": [[m.key, m.role, weights_digest(m.model)] for m in models],
        "images": len(test.labels),
        "image_shape": [int(n) for n in test.image_shape],
        "class_names": [str(name) for name in test.class_names],
        "has_masks": bool(test.has_masks),
    }
    return run_digest(record, test.labels)


def write_part(path, part, meta, sums=None):
    """Writes ``part`` with its record ``meta`` and its images' interval
    sums ``sums`` (key -> `BootstrapSums`) to ``path``, atomically."""
    rows, blocks = list(part.rows.items()), list(part.blocks.items())
    sums = list((sums or {}).items())
    record = {
        **meta,
        "format": PART_FORMAT,
        "start": int(part.start),
        "stop": int(part.stop),
        "rows": [list(key) for key, _ in rows],
        "blocks": [list(key) for key, _ in blocks],
        "sums": [[list(key), s.first, s.size] for key, s in sums],
    }
    arrays = {f"r{k}": value for k, (_, value) in enumerate(rows)}
    arrays.update({f"b{k}": value for k, (_, value) in enumerate(blocks)})
    arrays.update({f"s{k}": s.digits for k, (_, s) in enumerate(sums)})
    arrays.update({f"c{k}": s.counts for k, (_, s) in enumerate(sums)})
    arrays["meta"] = np.frombuffer(json.dumps(record).encode(), np.uint8)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        with open(temporary, "wb") as file:
            np.savez(file, **arrays)


def part_record(path):
    """The record (``meta``) of one part file; see `read_part`."""
    return read_part(path)[1]


def _stored_sums(stored, meta):
    return {
        tuple(key): BootstrapSums(stored[f"s{k}"], first, stored[f"c{k}"], size)
        for k, (key, first, size) in enumerate(meta.get("sums", []))
    }


def read_part(path):
    """``(Part, meta)`` of one part file; ``meta["interval_sums"]`` holds
    its interval sums (key -> `BootstrapSums`).

    Raises:
        ValueError: When the file is truncated, unreadable or not a part.
    """
    try:
        with open(path, "rb") as file, np.load(file) as stored:
            meta = json.loads(stored["meta"].tobytes().decode())
            rows = {
                tuple(key): stored[f"r{k}"]
                for k, key in enumerate(meta["rows"])
            }
            blocks = {
                tuple(key): stored[f"b{k}"]
                for k, key in enumerate(meta["blocks"])
            }
            sums = _stored_sums(stored, meta)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        raise ValueError(
            f"The part {Path(path).name} in {Path(path).parent} is truncated "
            "or not an explain-attn part. Run its shard again (or remove "
            "the file)."
        ) from None
    if meta.get("format") != PART_FORMAT:
        raise ValueError(
            f"The part {Path(path).name} is not an explain-attn part "
            f"({PART_FORMAT!r}). Received: format={meta.get('format')!r}"
        )
    meta["interval_sums"] = sums
    return Part(meta["start"], meta["stop"], rows, blocks), meta


def _part_files(folder):
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(
            f"The parts folder {str(folder)!r} does not exist. Give the "
            "--parts folder the shards wrote to."
        )
    return sorted(folder.glob("shard-*.npz"))


def complete_shards(folder, fingerprint, num_shards):
    """The shard indices with a complete part of this run in ``folder``
    (a resumed run redoes only the others)."""
    done = set()
    if not Path(folder).is_dir():
        return done
    for path in _part_files(folder):
        try:
            _, meta = read_part(path)
        except ValueError:
            continue
        if (
            meta["fingerprint"] == fingerprint
            and meta["num_shards"] == num_shards
            and path.name == part_name(meta["index"], num_shards)
        ):
            done.add(meta["index"])
    return done


def read_parts(folder):
    """``(Part, metas, sums)``: every part of ``folder`` checked and
    combined, and their interval sums added (`add_sums`).

    Raises:
        ValueError: (one line naming the part) for no part, a truncated or
            foreign part, two parts of one shard, or a missing shard.
    """
    paths = _part_files(folder)
    if not paths:
        raise ValueError(
            f"The parts folder {str(folder)!r} holds no part "
            "(shard-*.npz). Run the shards with --parts first."
        )
    found = _read_all(paths)
    check_parts([(path, meta) for path, (_, meta) in found])
    metas = sorted((meta for _, (_, meta) in found), key=lambda m: m["index"])
    sums = add_sums(meta.pop("interval_sums") for meta in metas)
    return combine([part for _, (part, _) in found]), metas, sums


def _read_all(paths):
    """``[(path, (Part, meta))]`` of every part file, with progress on a
    terminal (`explain_attn.progress`)."""
    found = []
    with progress_bar(len(paths), "merge: reading parts", unit="parts") as bar:
        for path in paths:
            found.append((path, read_part(path)))
            bar.add()
    return found


RUN_PATHS = ("data", "attention_models", "baseline_model", "cache_dir")
"""Options of a run's record that name files: left out of its fingerprint
(the same models and data may sit elsewhere on another machine)."""


def numbers_options(run):
    """The options of a run's record that its fingerprint covers."""
    return {k: v for k, v in run.items() if k not in RUN_PATHS}


@dataclasses.dataclass
class Merged:
    """The parts of every shard, combined (`read_parts`), in place of the
    report's pass.

    Attributes:
        part: The combined `Part`.
        metas: The parts' records, by shard index.
        sums: The parts' interval sums, added up.
    """

    part: Part
    metas: list
    sums: dict = dataclasses.field(default_factory=dict)

    @property
    def fingerprint(self):
        return self.metas[0]["fingerprint"]

    def record(self):
        """The report's ``shards`` section: each shard's images and the
        worker that ran it."""
        return [
            {
                "index": meta["index"],
                "start": meta["start"],
                "stop": meta["stop"],
                "host": meta["worker"]["host"],
                "pid": meta["worker"]["pid"],
            }
            for meta in self.metas
        ]


def shard_sums(
    models, explanations, reference, test, observed, *, images, seed
):
    """The interval sums (`explain_attn.report.interval_sums`) of the
    test images ``images`` (a ``range``), from ``observed``, their reduce
    (`observed_from`), under the report's bootstrap of ``seed``."""
    keyed = report_bootstrap(len(test.labels), seed, images)
    evaluation = observed["evaluation"]
    labels = np.asarray(test.labels)[images.start : images.stop]
    sums = interval_sums(
        interval_vectors(models, explanations, reference, evaluation, labels),
        keyed,
    )
    values = observed["baselines"]
    if values is not None:
        own = {e.key: evaluation.values[e] for e in explanations}
        sums |= baseline_sums(values, own, keyed)
    return sums


def _shard_pass(models, explanations, test, contributors, span, options):
    """`evaluate_parts` over the shard's images: ``span`` is ``(start,
    stop, images per chunk)``."""
    start, stop, chunk = span
    return evaluate_parts(
        models,
        explanations,
        shard_chunks(test, start, stop, chunk),
        contributors=contributors,
        batch_size=options["batch_size"],
        verbose=options.get("verbose", 0),
        num_images=stop - start,
        start=start,
        strategy=options.get("strategy"),
    )


def evaluate_shard(models, explanations, reference, test, job, **options):
    """The map side: evaluates shard ``job`` and writes its part.

    Args:
        models, explanations, reference, test: As `build_report` has them.
        job: The `ShardJob`; ``job.run`` is the run's record.
        **options: ``layers``, ``batch_size``, ``verbose``, ``strategy``,
            ``chunk_size``, ``seed`` (of the bootstrap; 0 when left out).

    Returns:
        The part's path.
    """
    batch_size = options["batch_size"]
    chunk = report_chunk_size(test, batch_size, options.get("chunk_size"))
    start, stop = shard_range(
        len(test.labels), chunk, job.num_shards, job.index
    )
    contributors = report_contributors(
        models,
        explanations,
        reference,
        test,
        layers=options["layers"],
        batch_size=batch_size,
        strategy=options.get("strategy"),
    )
    part, sums = Part(start, start), {}
    if stop > start:
        part = _shard_pass(
            models,
            explanations,
            test,
            contributors,
            (start, stop, chunk),
            options,
        )
        sums = shard_sums(
            models,
            explanations,
            reference,
            test,
            observed_from(contributors, part),
            images=range(start, stop),
            seed=options.get("seed", 0),
        )
    meta = {
        "fingerprint": run_fingerprint(models, test, numbers_options(job.run)),
        "num_shards": job.num_shards,
        "index": job.index,
        "chunk_size": chunk,
        "run": job.run,
        "worker": worker_record(),
    }
    write_part(job.path, part, meta, sums)
    return job.path
