"""What images contribute to a report, and how contributions add up.

The evaluation pass is a map and a reduce:

- **map**: a `Contributor`'s ``contribute(start, images, maps, labels,
  masks)`` is a function of one chunk of consecutive images (the first at
  index ``start`` of the test set) and returns a `Part`: per-image
  ``rows`` (first axis: the chunk's images) and per-chunk ``blocks`` (first
  axis of length 1: sums and counts over the chunk's images).
- **reduce**: `combine` joins parts in image order: rows and blocks are
  concatenated, which is exact and associative, and the parts may arrive
  in any order. A contributor's ``reduce(part)`` then turns the combined
  part into what the report shows (its result: the one way every
  contributor returns what it observed); sums over blocks are added in
  block order (`block_sum`), so the same chunks give the same bits however
  they were grouped into shards.

So one process, several threads or many machines produce the same
numbers, provided they cut the test set into the same chunks: shards are
runs of whole chunks (`explain_attn.report.shards`).
"""

import abc
import dataclasses

import numpy as np

__all__ = ["Contributor", "Part", "block_sum", "chunk_length", "combine"]


@dataclasses.dataclass
class Part:
    """The contributions of the images ``start`` to ``stop - 1``.

    Attributes:
        start, stop: The images' first index and one past the last.
        rows: Key (a tuple of strings) -> array whose first axis has one
            entry per image.
        blocks: Key -> array whose first axis has one entry per chunk.
    """

    start: int
    stop: int
    rows: dict = dataclasses.field(default_factory=dict)
    blocks: dict = dataclasses.field(default_factory=dict)

    def section(self, name):
        """The part's keys under ``name``, without that first element."""
        return Part(
            self.start,
            self.stop,
            {k[1:]: v for k, v in self.rows.items() if k[0] == name},
            {k[1:]: v for k, v in self.blocks.items() if k[0] == name},
        )

    def prefixed(self, name):
        """The part with ``name`` put in front of every key."""
        return Part(
            self.start,
            self.stop,
            {(name, *k): v for k, v in self.rows.items()},
            {(name, *k): v for k, v in self.blocks.items()},
        )


def _joined(parts, attribute):
    keys = getattr(parts[0], attribute).keys()
    for part in parts[1:]:
        if getattr(part, attribute).keys() != keys:
            raise ValueError(
                "Parts to combine must hold the same contributions. "
                f"Received: keys {sorted(keys)} and "
                f"{sorted(getattr(part, attribute))}"
            )
    return {
        key: np.concatenate([getattr(part, attribute)[key] for part in parts])
        for key in keys
    }


def combine(parts):
    """One `Part` from parts of consecutive images, in any order.

    Args:
        parts: `Part` objects covering consecutive images without gap or
            overlap once sorted by ``start``; empty parts are skipped.

    Returns:
        A `Part` from the first ``start`` to the last ``stop``.

    Raises:
        ValueError: For no part with images, a gap or an overlap, or parts
            with different keys.
    """
    parts = sorted(
        (p for p in parts if p.stop > p.start), key=lambda p: p.start
    )
    if not parts:
        raise ValueError("There is no part with images to combine.")
    for before, after in zip(parts, parts[1:], strict=False):
        if before.stop != after.start:
            raise ValueError(
                "Parts to combine must cover consecutive images. Received: "
                f"images {before.start} to {before.stop - 1}, then "
                f"{after.start} to {after.stop - 1}"
            )
    return Part(
        parts[0].start,
        parts[-1].stop,
        _joined(parts, "rows"),
        _joined(parts, "blocks"),
    )


def chunk_length(*arrays):
    """The number of images of a chunk: the length of the first of
    ``arrays`` (images, labels, masks, ...) that is not ``None``; 0 when
    all are ``None``."""
    for array in arrays:
        if array is not None:
            return len(array)
    return 0


def block_sum(blocks):
    """The sum of per-chunk ``(K, ...)`` blocks, added in chunk order.

    A running sum, as one process adds chunk after chunk: the result does
    not depend on how the chunks were grouped into parts.
    """
    total = np.array(blocks[0], copy=True)
    for block in blocks[1:]:
        total += block
    return total


class Contributor(abc.ABC):
    """Base of the evaluation pass's contributors (see the module).

    Subclasses define ``contribute(start, images, maps, labels, masks)``
    returning a `Part` (the map) and ``reduce(part)`` returning what the
    report reads from the combined part (the reduce; ``part`` is ``None``
    when no chunk had images). Calling the object with a chunk (the
    `evaluate` observer protocol) keeps the chunk's part; `total` combines
    the parts kept, `load` replaces them by a part combined elsewhere (a
    merge), and `result` is the reduce of `total`.
    """

    def __init__(self):
        self._parts = []

    def __call__(self, start, images, maps, labels=None, masks=None):
        self._parts.append(self.contribute(start, images, maps, labels, masks))

    @abc.abstractmethod
    def contribute(self, start, images, maps, labels=None, masks=None):
        """The `Part` of one chunk."""

    @abc.abstractmethod
    def reduce(self, part):
        """What the report reads from ``part`` (the combined `Part` of
        every chunk, or ``None`` when there was none)."""

    @property
    def result(self):
        """`reduce` of the parts kept (`total`)."""
        return self.reduce(self.total)

    def load(self, part):
        """Uses ``part`` (combined from every chunk) as the contributions."""
        self._parts = [part]

    @property
    def total(self):
        """The combined `Part` of every chunk, or ``None`` before any."""
        parts = [part for part in self._parts if part.stop > part.start]
        if not parts:
            return None
        self._parts = [combine(parts)]  # Combined once, then kept.
        return self._parts[0]
