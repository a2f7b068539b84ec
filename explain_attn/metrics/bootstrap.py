"""A bootstrap keyed by image: intervals that add up across shards.

The percentile bootstrap (`explain_attn.metrics.statistics.summarize`
without ``bootstrap``) resamples the whole set: its draws depend on how
many values there are and in which order, so a shard cannot compute its
share of them. The Poisson bootstrap (Hanley and MacGibbon, 2006; Chamandy
et al., 2012, "Estimating uncertainty for massive data streams") weights
image ``i`` in replicate ``b`` by a count ``w[b, i] ~ Poisson(1)`` drawn from
``(seed, image id, b)`` alone. Replicate ``b``'s mean is
``sum_i w[b, i] x_i / sum_i w[b, i]``: two sums over images, which shards
accumulate separately and a merge adds (`PoissonBootstrap.sums`,
`interval_from_sums`). The interval is the percentile interval of the
replicate means; it does not depend on the order of the images or on how
they were split.

The counts come from a counter-based generator: SplitMix64 (Steele, Lea
and Flood, 2014) applied to the seed, then the image id, then the
replicate, gives 53 uniform bits, turned into a Poisson(1) count by its
inverse distribution function.

Sums that add up bit for bit: a shard's float sums would round
differently from the whole set's, so `PoissonBootstrap.keyed_sums` keeps
``sum_i w[b, i] x_i`` exact, as integer digits on a fixed grid of
`DIGIT_BITS`-bit bins (`BootstrapSums`). Each value ``x = m 2^e`` (``m`` an
integer below ``2^53``) is cut into four signed digits of bins
``floor(e / DIGIT_BITS)`` and up; a replicate's digit sums are products of
counts below 19 and digits below ``2^20`` added over images, exact in a
float64 matrix product up to 477 million images and exact in int64 when
parts are added. Only the final ``totals`` rounds, the same way for the
same digits: intervals from summed parts equal the whole set's exactly.
"""

import dataclasses
import math

import numpy as np

__all__ = [
    "BootstrapSums",
    "PoissonBootstrap",
    "interval_from_sums",
    "poisson_weights",
]

DIGIT_BITS = 20
"""Bits of one digit of `BootstrapSums`."""

_GAMMA = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_POISSON_CDF = np.cumsum(
    [math.exp(-1.0) / math.factorial(k) for k in range(19)]
)
"""Poisson(1) distribution function at 0 to 18 (1 - 2e-18 at 18)."""


def _mix(state):
    """SplitMix64's output function of ``uint64`` arrays (wrapping)."""
    z = state + _GAMMA
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


_WEIGHT_BLOCK = 65_536
"""Counts `poisson_weights` draws at a time (512 KiB of ``uint64``)."""


def _mix_in_place(z, scratch):
    """`_mix` of ``z`` into ``z`` (``scratch``: a buffer of its shape)."""
    np.add(z, _GAMMA, out=z)
    for shift, factor in ((30, _MIX1), (27, _MIX2), (31, None)):
        np.right_shift(z, np.uint64(shift), out=scratch)
        np.bitwise_xor(z, scratch, out=z)
        if factor is not None:
            np.multiply(z, factor, out=z)
    return z


def _as_ids(image_ids):
    ids = np.asarray(image_ids)
    if ids.ndim != 1 or (ids.size and not np.issubdtype(ids.dtype, np.integer)):
        raise ValueError(
            "`image_ids` must be a 1-D array of integers, one per image. "
            f"Received: image_ids with shape {ids.shape} and dtype "
            f"{ids.dtype}"
        )
    if ids.size and ids.min() < 0:
        raise ValueError(
            "`image_ids` must not be negative. Received: "
            f"image_ids with minimum {int(ids.min())}"
        )
    return ids.astype(np.uint64)


def poisson_weights(image_ids, *, num_resamples, seed=0, first=0):
    """``(num_resamples, n)`` uint8 Poisson(1) counts keyed by image.

    Args:
        image_ids: ``(n,)`` non-negative integers naming the images (their
            index in the test set).
        num_resamples: Replicates ``first`` to ``first + num_resamples - 1``.
        seed: A non-negative integer.
        first: The first replicate's number.

    Returns:
        ``w[b, j]``, the count of image ``image_ids[j]`` in replicate
        ``first + b``: a function of ``(seed, image id, replicate)`` only.
    """
    ids = _as_ids(image_ids)
    key = _mix(np.array([seed], np.uint64))
    per_image = _mix(key ^ ids)
    replicates = _mix(np.arange(first, first + num_resamples, dtype=np.uint64))
    counts = np.empty((len(replicates), len(ids)), np.uint8)
    # A few replicates at a time, in place: the same operations on each
    # element as on the whole array, in buffers that stay in the cache.
    rows = max(1, _WEIGHT_BLOCK // max(len(ids), 1))
    bits = np.empty((min(rows, len(replicates)), len(ids)), np.uint64)
    scratch = np.empty_like(bits)
    uniform = np.empty(bits.shape, np.float64)
    for start in range(0, len(replicates), rows):
        block = replicates[start : start + rows, None]
        z, u = bits[: len(block)], uniform[: len(block)]
        np.bitwise_xor(per_image[None, :], block, out=z)
        _mix_in_place(z, scratch[: len(block)])
        np.right_shift(z, np.uint64(11), out=z)
        np.multiply(z, 2.0**-53, out=u)
        counts[start : start + len(block)] = np.searchsorted(
            _POISSON_CDF, u, side="right"
        )
    return counts


def interval_from_sums(totals, counts, *, confidence=0.95):
    """The percentile interval of replicate means ``totals / counts``.

    Replicates whose ``counts`` are 0 (no image drawn) are left out; with
    fewer than two replicates left, the interval is NaN.

    Returns:
        ``(low, high)`` floats.
    """
    totals = np.asarray(totals, np.float64)
    counts = np.asarray(counts, np.float64)
    drawn = counts > 0
    if drawn.sum() < 2:
        return math.nan, math.nan
    means = totals[drawn] / counts[drawn]
    alpha = 1.0 - confidence
    low, high = np.quantile(means, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)


def _digits(values):
    """``(digits, first)``: ``(n, k)`` float64 signed integers below
    ``2^DIGIT_BITS`` with ``values[i] = sum_j digits[i, j] 2^(DIGIT_BITS
    (first + j))`` exactly (NaN: 0)."""
    values = np.where(np.isnan(values), 0.0, values)
    fraction, exponent = np.frexp(values)
    whole = np.abs(np.ldexp(fraction, 53)).astype(np.int64)
    low = exponent.astype(np.int64) - 53
    bins, shift = np.divmod(low, DIGIT_BITS)
    used = whole > 0
    if not used.any():
        return np.zeros((len(values), 1)), 0
    first = int(bins[used].min())
    width = int(bins[used].max()) - first + 4
    digits = np.zeros((len(values), width))
    rows = np.nonzero(used)[0]
    whole, shift, column = whole[used], shift[used], bins[used] - first
    sign = np.sign(values[used])
    mask = (1 << DIGIT_BITS) - 1
    digits[rows, column] = sign * (
        (whole & ((1 << (DIGIT_BITS - shift)) - 1)) << shift
    )
    for k in range(1, 4):
        part = (whole >> (DIGIT_BITS * k - shift)) & mask
        digits[rows, column + k] = sign * part
    # Bins without a digit (e.g. below float32 values' 24 bits) cost a
    # column of every product: dropped.
    kept = np.nonzero(digits.any(axis=0))[0]
    return digits[:, kept[0] : kept[-1] + 1], first + int(kept[0])


@dataclasses.dataclass
class BootstrapSums:
    """Exact per-replicate sums of one statistic over a set of images.

    Attributes:
        digits: ``(num_resamples, k)`` int64: replicate ``b``'s
            ``sum_i w[b, i] x_i`` is ``sum_j digits[b, j] 2^(DIGIT_BITS
            (first + j))``.
        first: The bin of ``digits[:, 0]``.
        counts: ``(num_resamples,)`` int64, ``sum_i w[b, i]`` over the
            images with a value.
        size: The number of images with a value.

    ``a + b`` are the sums of the union of two disjoint image sets, exact
    and in any order.
    """

    digits: np.ndarray
    first: int
    counts: np.ndarray
    size: int

    def __add__(self, other):
        first = min(self.first, other.first)
        stop = max(
            self.first + self.digits.shape[1],
            other.first + other.digits.shape[1],
        )
        digits = np.zeros((len(self.counts), stop - first), np.int64)
        for sums in (self, other):
            start = sums.first - first
            digits[:, start : start + sums.digits.shape[1]] += sums.digits
        return BootstrapSums(
            digits, first, self.counts + other.counts, self.size + other.size
        )

    def totals(self):
        """``(num_resamples,)`` float64 ``sum_i w[b, i] x_i``."""
        used = np.nonzero(self.digits.any(axis=0))[0]
        if not used.size:
            return np.zeros(len(self.counts))
        # Zero bins at either end are dropped: the same digits give the
        # same additions whatever bins the parts spanned.
        digits = self.digits[:, used[0] : used[-1] + 1].astype(np.float64)
        scales = DIGIT_BITS * (self.first + used[0] + np.arange(len(digits[0])))
        return np.ldexp(digits, scales).sum(axis=1)

    def interval(self, *, confidence=0.95):
        """The percentile interval of the replicate means."""
        return interval_from_sums(
            self.totals(), self.counts, confidence=confidence
        )


class PoissonBootstrap:
    """The Poisson bootstrap's counts for a set of images, drawn once.

    Args:
        image_ids: ``(n,)`` image ids (see `poisson_weights`), or an int
            ``n`` for ``0`` to ``n - 1``.
        num_resamples: Number of replicates.
        seed: Seed of the counts.

    The counts are held as ``(num_resamples, n)`` uint8 (10,000 x 2,000
    images: 20 MB); `sums` works through them in blocks.
    """

    def __init__(self, image_ids, *, num_resamples, seed=0):
        if isinstance(image_ids, int | np.integer):
            image_ids = np.arange(int(image_ids))
        self.image_ids = np.asarray(image_ids)
        self.num_resamples = int(num_resamples)
        self.seed = seed
        self.weights = poisson_weights(
            self.image_ids, num_resamples=self.num_resamples, seed=seed
        )

    def __len__(self):
        return len(self.image_ids)

    def take(self, chosen):
        """The bootstrap of the images ``chosen`` (indices or a mask):
        the same counts for the same images."""
        taken = PoissonBootstrap.__new__(PoissonBootstrap)
        taken.image_ids = self.image_ids[chosen]
        taken.num_resamples = self.num_resamples
        taken.seed = self.seed
        taken.weights = self.weights[:, chosen]
        return taken

    def first(self, num_resamples):
        """The same bootstrap with its first ``num_resamples`` replicates."""
        taken = self.take(slice(None))
        taken.num_resamples = min(num_resamples, self.num_resamples)
        taken.weights = self.weights[: taken.num_resamples]
        return taken

    def _checked(self, values):
        values = np.asarray(values, np.float64)
        if values.shape != (len(self),):
            raise ValueError(
                f"`values` must hold one value per image ({len(self)}). "
                f"Received: values.shape={values.shape}"
            )
        return values

    def sums(self, values):
        """``(totals, counts)``, each ``(num_resamples,)`` float64:
        ``sum_i w[b, i] x_i`` and ``sum_i w[b, i]`` over the finite values
        (NaN marks a missing value, left out). Sums of disjoint image sets
        add up to the sums of their union."""
        values = self._checked(values)
        present = ~np.isnan(values)
        columns = np.stack([np.where(present, values, 0.0), present], axis=1)
        sums = np.empty((self.num_resamples, 2))
        step = max(1, 2_000_000 // max(len(self), 1))
        for start in range(0, self.num_resamples, step):
            block = self.weights[start : start + step].astype(np.float64)
            sums[start : start + step] = block @ columns
        return sums[:, 0], sums[:, 1]

    def keyed_sums(self, values):
        """The exact `BootstrapSums` of ``values`` (one per image; NaN
        marks a missing value, left out)."""
        return self.keyed_sums_of([values])[0]

    def keyed_sums_of(self, vectors):
        """`keyed_sums` of each of ``vectors``, as a list.

        The same sums as one `keyed_sums` call per vector (exact integer
        sums, so the order of the additions does not matter), from one pass
        over the counts: a report's hundred-odd vectors convert each block
        of counts to float64 once, not once per vector, and multiply it by
        all their digit columns at once (1,000 images, 121 vectors: 2.8-3.3
        -> 0.2-0.3 CPU s, `benchmarks/RESULTS.md`, issue 27, third round).
        """
        # Columns per product: the stacked columns (n x width) and the
        # products (num_resamples x width) stay a few tens of MB.
        limit = min(256, max(8, 4_000_000 // max(len(self), 1)))
        found, pending, width = [], [], 0
        for values in vectors:
            values = self._checked(values)
            digits, first = _digits(values)
            pending.append((digits, first, ~np.isnan(values)))
            width += digits.shape[1] + 1
            if width >= limit:
                found += self._stacked_sums(pending)
                pending, width = [], 0
        return found + (self._stacked_sums(pending) if pending else [])

    def _stacked_sums(self, parts):
        """The `BootstrapSums` of ``(digits, first, present)`` parts from
        one product of their stacked columns."""
        columns = [
            np.concatenate([digits, present[:, None]], 1)
            for digits, _, present in parts
        ]
        sums = self._block_products(np.concatenate(columns, 1))
        found, start = [], 0
        for digits, first, present in parts:
            part = sums[:, start : start + digits.shape[1] + 1]
            found.append(
                BootstrapSums(
                    part[:, :-1], first, part[:, -1], int(present.sum())
                )
            )
            start += digits.shape[1] + 1
        return found

    def _block_products(self, columns):
        """``(num_resamples, k)`` int64 ``weights @ columns`` (integer
        ``columns``), the counts converted to float64 a block at a time."""
        sums = np.empty((self.num_resamples, columns.shape[1]))
        step = max(1, 2_000_000 // max(len(self), 1))
        for start in range(0, self.num_resamples, step):
            block = self.weights[start : start + step].astype(np.float64)
            sums[start : start + step] = block @ columns
        return sums.astype(np.int64)

    def interval(self, values, *, confidence=0.95):
        """The percentile interval of the replicate means of ``values``
        (from their exact `keyed_sums`)."""
        return self.keyed_sums(values).interval(confidence=confidence)
