"""Issue 27, third and fourth rounds: the demo's cut costs, old and new
interleaved.

Each cut computes the same numbers with less work. This script times the
old way (reproduced here as it was before the cut) against the new one in
one process, round after round, in CPU seconds, and checks that the
results are equal to the bit:

- **keyed sums**: 121 vectors of 1,000 images (what the demo report's
  intervals sum) under a `PoissonBootstrap` of 10,000 replicates: one
  `keyed_sums` per vector (the counts converted to float64 for every
  vector) against `PoissonBootstrap.keyed_sums_of` (once per block);
- **paired differences**: 16 percentile-bootstrap paired differences of
  1,000 images (the interventions of two layers): one `paired_difference`
  each against `paired_differences` (the draws made once);
- **map similarity**: 22 comparisons of 256 maps with one original (one
  model's randomisation cascade): `map_similarity` as it was (the
  original ranked, scaled and filtered every time) against one
  `MapSimilarity`;
- **Poisson counts** (fourth round): the report's 10,000 x 1,000 bootstrap
  counts, the whole array at once (as before) against `poisson_weights`
  (cache-sized blocks, in place);
- **figures** (fourth round): a 2 x 28-panel filmstrip and a curves figure
  as PNG URIs, ``savefig(bbox_inches="tight")`` (a blank draw to find the
  box, then the draw) against `to_data_uri` (the box measured, one draw);
  the PNGs are compared byte for byte.

Run: ``python -m benchmarks.bench_demo_parts --rounds 3``.
"""

import argparse
import base64
import io
import time

import numpy as np
from scipy.ndimage import uniform_filter

from explain_attn import metrics
from explain_attn.faithfulness.randomization import (
    MapSimilarity,
    _unit_scaled,
)
from explain_attn.metrics.bootstrap import (
    _POISSON_CDF,
    BootstrapSums,
    _as_ids,
    _digits,
    _mix,
)
from explain_attn.report.figures import to_data_uri


def _old_keyed_sums(keyed, values):
    """`PoissonBootstrap.keyed_sums` before the cut."""
    digits, first = _digits(values)
    columns = np.concatenate([digits, ~np.isnan(values)[:, None]], 1)
    sums = np.empty((keyed.num_resamples, columns.shape[1]))
    step = max(1, 2_000_000 // max(len(keyed), 1))
    for start in range(0, keyed.num_resamples, step):
        block = keyed.weights[start : start + step].astype(np.float64)
        sums[start : start + step] = block @ columns
    sums = sums.astype(np.int64)
    count = int((~np.isnan(values)).sum())
    return BootstrapSums(sums[:, :-1], first, sums[:, -1], count)


def _same_sums(a, b):
    return (
        a.first == b.first
        and a.size == b.size
        and np.array_equal(a.digits, b.digits)
        and np.array_equal(a.counts, b.counts)
    )


def keyed_sums_case(rng):
    keyed = metrics.PoissonBootstrap(1000, num_resamples=10_000, seed=0)
    vectors = [rng.random(1000).astype(np.float32) for _ in range(100)]
    vectors = [v.astype(np.float64) for v in vectors] + [
        np.where(rng.random(1000) < 0.1, np.nan, rng.normal(size=1000))
        for _ in range(21)
    ]

    def old():
        return [_old_keyed_sums(keyed, v) for v in vectors]

    def new():
        return keyed.keyed_sums_of(vectors)

    def equal(a, b):
        return all(_same_sums(x, y) for x, y in zip(a, b, strict=True))

    return old, new, equal


def paired_case(rng):
    pairs = [
        (rng.random(1000), rng.random(1000)) if k % 2 else
        ((rng.random(1000) < 0.8) * 1.0, (rng.random(1000) < 0.9) * 1.0)
        for k in range(16)
    ]  # fmt: skip

    def old():
        return [metrics.paired_difference(a, b) for a, b in pairs]

    def new():
        return metrics.paired_differences(pairs)

    return old, new, lambda a, b: a == b


def _old_ssim(first, second, window):
    first, second = np.moveaxis(first, 0, -1), np.moveaxis(second, 0, -1)

    def mean(values):
        return uniform_filter(values, size=(window, window, 1))

    cov_norm = window**2 / (window**2 - 1)
    ux, uy = mean(first), mean(second)
    vx = cov_norm * (mean(first * first) - ux * ux)
    vy = cov_norm * (mean(second * second) - uy * uy)
    vxy = cov_norm * (mean(first * second) - ux * uy)
    c1, c2 = 0.01**2, 0.03**2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    return numerator / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def _old_map_similarity(original, changed):
    """`map_similarity` before the cut (7-pixel window)."""
    original = np.asarray(original, np.float64)
    changed = np.asarray(changed, np.float64)
    before = np.ptp(original, axis=(1, 2)) == 0
    after = np.ptp(changed, axis=(1, 2)) == 0
    rho = metrics.spearman(original, changed)
    rho = np.where(after & ~before, 0.0, rho)
    rho = np.where(before, np.nan, rho)
    full = _old_ssim(_unit_scaled(original), _unit_scaled(changed), 7)
    return rho, full[3:-3, 3:-3].mean(axis=(0, 1))


def similarity_case(rng):
    original = rng.random((256, 32, 32)).astype(np.float32)
    original[3] = 0.5
    steps = [
        np.round(original + rng.normal(0, s, original.shape), 2)
        for s in np.linspace(0.01, 1.0, 22)
    ]

    def old():
        return [_old_map_similarity(original, step) for step in steps]

    def new():
        similarity = MapSimilarity(original)
        return [similarity(step) for step in steps]

    def equal(a, b):
        return all(
            np.array_equal(x, y, equal_nan=True)
            for pair_a, pair_b in zip(a, b, strict=True)
            for x, y in zip(pair_a, pair_b, strict=True)
        )

    return old, new, equal


def _old_poisson_weights(image_ids, *, num_resamples, seed=0, first=0):
    """`poisson_weights` before the cut (the whole array at once)."""
    ids = _as_ids(image_ids)
    key = _mix(np.array([seed], np.uint64))
    per_image = _mix(key ^ ids)
    replicates = np.arange(first, first + num_resamples, dtype=np.uint64)
    bits = _mix(per_image[None, :] ^ _mix(replicates)[:, None])
    uniform = (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53
    counts = np.searchsorted(_POISSON_CDF, uniform, side="right")
    return counts.astype(np.uint8)


def poisson_case(rng):
    ids = np.arange(1000)

    def old():
        return _old_poisson_weights(ids, num_resamples=10_000)

    def new():
        return metrics.poisson_weights(ids, num_resamples=10_000)

    return old, new, np.array_equal


def _figures(rng):
    from matplotlib.figure import Figure

    filmstrip = Figure(figsize=(1.4 * 29, 1.4 * 2))
    for axis in filmstrip.subplots(2, 28).flat:
        axis.imshow(rng.random((16, 16)), cmap="magma", vmin=0, vmax=1)
        axis.set_title("epoch 3", fontsize=7)
        axis.set_axis_off()
    filmstrip.tight_layout()
    curves = Figure(figsize=(10, 3))
    for axis in curves.subplots(1, 2):
        axis.plot(np.linspace(0, 1, 11), rng.random((11, 4)))
        axis.set_xlabel("fraction of pixels")
        axis.legend(["a", "b", "c", "random"], fontsize=7)
    curves.tight_layout()
    return filmstrip, curves


def _old_uri(figure, dpi=90):
    """`to_data_uri` before the cut."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f"data:image/png;base64,{encoded}"


def figures_case(rng):
    seed = int(rng.integers(1 << 30))

    def old():
        return [_old_uri(f) for f in _figures(np.random.default_rng(seed))]

    def new():
        return [to_data_uri(f) for f in _figures(np.random.default_rng(seed))]

    return old, new, lambda a, b: a == b


CASES = {
    "keyed sums (121 vectors, 1,000 images)": keyed_sums_case,
    "paired differences (16 pairs, 1,000 images)": paired_case,
    "map similarity (22 x 256 maps of 32x32)": similarity_case,
    "Poisson counts (10,000 x 1,000)": poisson_case,
    "figures (a 56-panel filmstrip and curves, PNG)": figures_case,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    for name, case in CASES.items():
        old, new, equal = case(np.random.default_rng(0))
        for round_ in range(arguments.rounds):
            started = time.process_time()
            before = old()
            middle = time.process_time()
            after = new()
            stopped = time.process_time()
            same = equal(before, after)
            print(
                f"{name}, round {round_ + 1}: old {middle - started:.2f} s, "
                f"new {stopped - middle:.2f} s CPU, equal {same}"
            )


if __name__ == "__main__":
    main()
