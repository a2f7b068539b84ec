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
"""

import math

import numpy as np

__all__ = ["PoissonBootstrap", "interval_from_sums", "poisson_weights"]

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
    replicates = np.arange(first, first + num_resamples, dtype=np.uint64)
    bits = _mix(per_image[None, :] ^ _mix(replicates)[:, None])
    uniform = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    counts = np.searchsorted(_POISSON_CDF, uniform, side="right")
    return counts.astype(np.uint8)


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

    def sums(self, values):
        """``(totals, counts)``, each ``(num_resamples,)`` float64:
        ``sum_i w[b, i] x_i`` and ``sum_i w[b, i]`` over the finite values
        (NaN marks a missing value, left out). Sums of disjoint image sets
        add up to the sums of their union."""
        values = np.asarray(values, np.float64)
        if values.shape != (len(self),):
            raise ValueError(
                f"`values` must hold one value per image ({len(self)}). "
                f"Received: values.shape={values.shape}"
            )
        present = ~np.isnan(values)
        columns = np.stack([np.where(present, values, 0.0), present], axis=1)
        sums = np.empty((self.num_resamples, 2))
        step = max(1, 2_000_000 // max(len(self), 1))
        for start in range(0, self.num_resamples, step):
            block = self.weights[start : start + step].astype(np.float64)
            sums[start : start + step] = block @ columns
        return sums[:, 0], sums[:, 1]

    def interval(self, values, *, confidence=0.95):
        """The percentile interval of the replicate means of ``values``."""
        totals, counts = self.sums(values)
        return interval_from_sums(totals, counts, confidence=confidence)
