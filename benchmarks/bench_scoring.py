"""The per-image work of the report's pass at 224², without the passes.

One chunk of the evaluation at 224 x 224 (`bench_report`'s setup: the
demo pair untrained, 41 generated test images with masks, the chunk the
report scores at this size): its maps are computed once, then each of
the pass's per-image contributions is timed on them, in CPU seconds of
this process (`time.process_time`), best and median of ``--rounds``
after one warm-up call:

- ``scores``: `explain_attn.report.evaluate.Scores` (every metric of the
  four explanations at the masks' 224², and the agreement with the
  reference CAM);
- ``baselines``: `explain_attn.report.baselines.baseline_values` (the flat
  map and the centre prior against every mask);
- ``thumbnails``: `explain_attn.report.explorer.Thumbnails`;
- ``fingerprint``: `explain_attn.data.source.Fingerprint` over the chunk.

Run it with ``PYTHONPATH`` at each checkout in turn to compare two trees
on the same machine (``python -m benchmarks.bench_scoring --rounds 5``);
the figures are printed as one JSON object.
"""

import argparse
import json
import statistics
import tempfile
import time

CHUNK = 41
"""Images per chunk at 224² (`explain_attn.report.evaluate.chunk_size_for`
with the batch of `batch_size_for`)."""


def _chunk(image_size):
    """``(explanations, reference, images, labels, masks, maps)``."""
    from benchmarks.bench_report import _generated, _scale_models, _scale_setup
    from explain_attn.explanations.explanation import Explainer

    with tempfile.TemporaryDirectory(prefix="bench_scoring_") as directory:
        paths = _scale_models(directory, image_size)
        models, explanations, reference = _scale_setup(*paths)
        images, labels, masks = _generated(0, CHUNK, image_size)
        maps = Explainer(explanations)(images, batch_size=CHUNK, labels=labels)
    return explanations, reference, images, labels, masks, maps


def _timed(function, rounds):
    function()  # Warm-up.
    seconds = []
    for _ in range(rounds):
        started = time.process_time()
        function()
        seconds.append(time.process_time() - started)
    return {"best": min(seconds), "median": statistics.median(seconds)}


def measure(*, rounds=5, image_size=224):
    """CPU seconds of each contribution on one chunk (see the module)."""
    from explain_attn.data.source import Fingerprint
    from explain_attn.report.baselines import baseline_values
    from explain_attn.report.evaluate import Scores
    from explain_attn.report.explorer import Thumbnails

    explanations, reference, images, labels, masks, maps = _chunk(image_size)
    scores = Scores(explanations, reference)
    thumbnails = Thumbnails(
        explanations, count=CHUNK, image_shape=images.shape[1:3]
    )

    def fingerprint():
        digest = Fingerprint(CHUNK, images.shape[1:], True, ("a", "b"))
        digest.update(images, labels, masks)
        return digest.hexdigest()

    work = {
        "scores": lambda: scores.contribute(0, images, maps, labels, masks),
        "baselines": lambda: baseline_values(masks),
        "thumbnails": lambda: thumbnails.contribute(0, images, maps),
        "fingerprint": fingerprint,
    }
    return {
        "images": CHUNK,
        **{name: _timed(function, rounds) for name, function in work.items()},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=224)
    args = parser.parse_args(argv)
    print(json.dumps(measure(rounds=args.rounds, image_size=args.image_size)))


if __name__ == "__main__":
    main()
