"""Coverage of the report's intervals: Poisson (keyed by image) vs percentile.

Draws ``--trials`` data sets of ``n`` values from distributions with a known
mean, computes the 95 % interval of the mean both ways with the same number
of resamples, and counts how often it contains the true mean (the nominal
rate is 0.95; with 1,000 trials a rate is known to about +-0.014). Also
reports the median interval width of each method.

With ``--merge N``, measures instead what the merge of a sharded report
pays for its intervals over ``N`` images (``--statistics`` of them, cut
into ``--shards`` parts): the counts of all images drawn at the merge and
each statistic's sums computed there (what the merge did before the
shards wrote their sums), against the shards' exact sums
(`metrics.BootstrapSums`) added and read; and what the shards pay for
their sums, float (before) or exact. CPU seconds (``time.process_time``)
and the peak of NumPy's allocations (``tracemalloc``).

Run: ``python -m benchmarks.bench_bootstrap [--trials 1000]`` or
``python -m benchmarks.bench_bootstrap --merge 1000000``.
"""

import argparse
import json
import time
import tracemalloc

import numpy as np

from explain_attn import metrics

DISTRIBUTIONS = {
    "normal(0, 1)": (lambda rng, n: rng.normal(size=n), 0.0),
    "exponential(1)": (lambda rng, n: rng.exponential(size=n), 1.0),
    "bernoulli(0.2)": (lambda rng, n: (rng.random(n) < 0.2) * 1.0, 0.2),
    "beta(0.5, 2)": (lambda rng, n: rng.beta(0.5, 2.0, size=n), 0.2),
}
SIZES = (12, 50, 200, 1000)


def _coverage(draw, mean, n, trials, resamples, rng):
    keyed = metrics.PoissonBootstrap(n, num_resamples=resamples, seed=1)
    hits = {"percentile": 0, "poisson": 0}
    widths = {"percentile": [], "poisson": []}
    for trial in range(trials):
        values = draw(rng, n)
        found = {
            "percentile": metrics.summarize(
                values, seed=trial, num_resamples=resamples
            ),
            "poisson": metrics.summarize(values, bootstrap=keyed),
        }
        for name, row in found.items():
            hits[name] += row["ci_low"] <= mean <= row["ci_high"]
            widths[name].append(row["ci_high"] - row["ci_low"])
    return {
        name: (hits[name] / trials, float(np.median(widths[name])))
        for name in hits
    }


def _measured(work):
    """``(result, cpu_seconds, peak_mib)`` of ``work()``."""
    tracemalloc.start()
    started = time.process_time()
    result = work()
    seconds = time.process_time() - started
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def merge_cost(count, statistics, shards):
    """The merge's interval cost over ``count`` images, before and now."""
    from explain_attn.report.interval_sums import add_sums
    from explain_attn.report.summaries import report_bootstrap

    rng = np.random.default_rng(0)
    values = rng.random((statistics, count), dtype=np.float32).astype(float)
    values[rng.random(values.shape) < 0.05] = np.nan
    cuts = np.linspace(0, count, shards + 1).astype(int)
    ranges = [range(a, b) for a, b in zip(cuts, cuts[1:], strict=False)]

    def shard_sums(exact):
        parts = []
        for images in ranges:
            keyed = report_bootstrap(count, 0, images)
            chosen = values[:, images.start : images.stop]
            parts.append(
                {s: (keyed.keyed_sums if exact else keyed.sums)(chosen[s])
                 for s in range(statistics)}
            )  # fmt: skip
        return parts

    _, float_shards, _ = _measured(lambda: shard_sums(False))
    parts, exact_shards, _ = _measured(lambda: shard_sums(True))

    def before():
        keyed = report_bootstrap(count, 0)
        return [keyed.interval(row) for row in values]

    def now():
        total = add_sums(parts)
        return [total[s].interval() for s in range(statistics)]

    old, before_s, before_mib = _measured(before)
    new, now_s, now_mib = _measured(now)
    stored = sum(s.digits.nbytes + s.counts.nbytes
                 for part in parts for s in part.values())  # fmt: skip
    return {
        "images": count, "statistics": statistics, "shards": shards,
        "resamples": parts[0][0].counts.size,
        "merge_before_cpu_s": before_s, "merge_before_peak_mib": before_mib,
        "merge_now_cpu_s": now_s, "merge_now_peak_mib": now_mib,
        "shards_float_sums_cpu_s": float_shards,
        "shards_exact_sums_cpu_s": exact_shards,
        "sums_stored_mib": stored / 2**20,
        "largest_interval_change": float(np.max(np.abs(np.subtract(old, new)))),
    }  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--merge", type=int, default=None)
    parser.add_argument("--statistics", type=int, default=20)
    parser.add_argument("--shards", type=int, default=8)
    options = parser.parse_args()
    if options.merge:
        found = merge_cost(options.merge, options.statistics, options.shards)
        print(json.dumps(found))
        return
    rng = np.random.default_rng(2026)
    print(
        f"| distribution | n | percentile coverage | Poisson coverage | "
        f"width ratio (Poisson / percentile) |  ({options.trials} trials, "
        f"{options.resamples} resamples)"
    )
    print("|---|---|---|---|---|")
    started = time.perf_counter()
    for label, (draw, mean) in DISTRIBUTIONS.items():
        for n in SIZES:
            found = _coverage(
                draw, mean, n, options.trials, options.resamples, rng
            )
            (pct, pct_width), (poi, poi_width) = (
                found["percentile"],
                found["poisson"],
            )
            print(
                f"| {label} | {n} | {pct:.3f} | {poi:.3f} | "
                f"{poi_width / pct_width:.3f} |",
                flush=True,
            )
    print(f"({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
