"""Times every per-image and agreement metric on 10,000 random 32×32 maps.

Run with `python benchmarks/bench_metrics.py`. Prints the best of a few
repeats per metric and the total; the goal (issue 5) is well under 1 s.
"""

import argparse
import time

import numpy as np

from explain_attn import metrics


def _best_time(function, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--num-maps", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    shape = (args.num_maps, args.size, args.size)
    maps = rng.random(shape).astype(np.float32)
    other_maps = rng.random(shape).astype(np.float32)
    masks = rng.random(shape) < 0.3

    timings = {}
    for name, function in metrics.CONCENTRATION_METRICS.items():
        timings[name] = _best_time(lambda f=function: f(maps), args.repeats)
    for name, function in metrics.FOREGROUND_METRICS.items():
        timings[name] = _best_time(
            lambda f=function: f(maps, masks), args.repeats
        )
    per_image_total = sum(timings.values())
    for name, function in metrics.AGREEMENT_METRICS.items():
        timings[name] = _best_time(
            lambda f=function: f(maps, other_maps), args.repeats
        )

    print(f"{args.num_maps} maps of {args.size}x{args.size} (float32 input)")
    for name, seconds in timings.items():
        print(f"  {name:<22s} {seconds * 1e3:8.1f} ms")
    print(f"  {'per-image total':<22s} {per_image_total * 1e3:8.1f} ms")
    print(f"  {'all metrics total':<22s} {sum(timings.values()) * 1e3:8.1f} ms")


if __name__ == "__main__":
    main()
