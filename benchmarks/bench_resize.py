"""The metrics' bilinear resize against its matrix form, on one thread.

`explain_attn.metrics.arrays.resize` (two element-wise taps per axis)
against ``rows @ maps @ columns.T`` with the same interpolation weights
(the form it replaced, computed by BLAS), on float32 maps of the sizes
the report scores, in CPU seconds (best and median of ``--rounds``,
alternated). Run it with ``OPENBLAS_NUM_THREADS=1`` so that BLAS is on
one thread too: ``OPENBLAS_NUM_THREADS=1 python -m benchmarks.bench_resize``.
Prints one JSON object per case, and whether the two agree bit for bit.
"""

import argparse
import json
import statistics
import time

import numpy as np

from explain_attn.metrics import arrays

CASES = ((41, 56, 224), (41, 112, 224), (41, 56, 112), (2048, 8, 32))
"""``(maps, size, target size)``: the report's chunk at 224² (its maps at
56² and 112², its agreement at 112²) and the demo's 32² images."""


def _matrix(size_out, size_in):
    lower, upper, weight_lower, weight_upper = arrays._bilinear_taps(
        size_out, size_in
    )
    matrix = np.zeros((size_out, size_in))
    np.add.at(matrix, (np.arange(size_out), lower), weight_lower)
    np.add.at(matrix, (np.arange(size_out), upper), weight_upper)
    return matrix


def _matrix_form(maps, shape):
    rows, columns = (
        _matrix(shape[0], maps.shape[1]),
        _matrix(shape[1], maps.shape[2]),
    )
    return rows @ maps @ columns.T


def measure(rounds=7):
    rng = np.random.default_rng(0)
    results = []
    for count, size, target in CASES:
        maps = rng.random((count, size, size)).astype(np.float32)
        shape = (target, target)
        seconds = {"matrix": [], "taps": []}
        functions = {"matrix": _matrix_form, "taps": arrays.resize}
        for _ in range(rounds):
            for name, function in functions.items():
                started = time.process_time()
                function(maps, shape)
                seconds[name].append(time.process_time() - started)
        results.append(
            {
                "maps": f"{count} of {size}² to {target}²",
                **{
                    name: {
                        "best_ms": 1e3 * min(values),
                        "median_ms": 1e3 * statistics.median(values),
                    }
                    for name, values in seconds.items()
                },
                "identical": bool(
                    np.array_equal(
                        _matrix_form(maps, shape), arrays.resize(maps, shape)
                    )
                ),
            }
        )
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    for result in measure(args.rounds):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
