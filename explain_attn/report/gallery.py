"""The report's gallery: informative test images with every map overlaid."""

import numpy as np

from explain_attn.data.loaders import take_images
from explain_attn.explanations.explanation import Explainer
from explain_attn.explanations.methods import get_method

__all__ = ["choose_examples", "gallery"]


def _candidates(explanations, reference, evaluation, labels, seed):
    """``[(reason, ordered image indices)]``, in the order they take turns."""
    attention = [e for e in explanations if e.is_attention]
    first = attention[0] if attention else explanations[0]
    values = evaluation.values[first]
    candidates = []
    if "mass_in_mask" in values:
        mass = np.nan_to_num(values["mass_in_mask"], nan=-1.0)
        order = np.argsort(-mass, kind="stable")
        candidates.append((f"highest mass in mask ({first.label})", order))
        candidates.append((f"lowest mass in mask ({first.label})", order[::-1]))
    if first in evaluation.agreement:
        spearman = np.nan_to_num(
            evaluation.agreement[first]["spearman"], nan=2.0
        )
        title = get_method(reference.method).title
        candidates.append(
            (
                f"largest disagreement of {first.label} with the "
                f"{reference.model_key}'s {title}",
                np.argsort(spearman, kind="stable"),
            )
        )
    wrong = np.flatnonzero(evaluation.predictions[first.model_key] != labels)
    candidates.append((f"misclassified by {first.model_name}", wrong))
    rng = np.random.default_rng(seed)
    candidates.append(("random", rng.permutation(len(labels))))
    return candidates


def choose_examples(candidates, count):
    """Takes indices from the candidate orders in turn, without repeats.

    Returns:
        A dict from image index to the reason it was chosen.
    """
    chosen = {}
    pointers = [0] * len(candidates)
    while len(chosen) < count:
        progressed = False
        for position, (reason, order) in enumerate(candidates):
            while pointers[position] < len(order):
                index = int(order[pointers[position]])
                pointers[position] += 1
                if index not in chosen:
                    chosen[index] = reason
                    progressed = True
                    break
            if len(chosen) >= count:
                break
        if not progressed:
            break
    return chosen


def gallery(
    explanations,
    reference,
    evaluation,
    test,
    *,
    num_examples,
    seed,
    batch_size,
    strategy=None,
):
    """Picks informative test images and computes their full-size maps.

    Only the chosen images are read from ``test`` (`take_images`): it may
    be a streamed source. ``strategy`` (``None`` or a `tf.distribute`
    strategy) shares the forward passes between its replicas.

    Returns:
        A list of dicts, in order of index, with ``index``, ``image``,
        ``mask``, ``overlays`` (`Explanation` -> ``(H, W)`` map at input
        resolution), ``reasons``, ``predictions`` (model key -> class) and
        ``rank`` (the order of choice: 0 first).
    """
    labels = np.asarray(test.labels)
    candidates = _candidates(explanations, reference, evaluation, labels, seed)
    chosen = choose_examples(candidates, min(num_examples, len(labels)))
    indices = np.array(sorted(chosen), dtype=int)
    if len(indices) == 0:
        return []
    chosen_data = take_images(test, indices)
    images = chosen_data.images
    overlays = Explainer(explanations, resize_to="input", strategy=strategy)(
        images, batch_size=batch_size, labels=labels[indices]
    )
    masks = chosen_data.masks
    rank = {index: position for position, index in enumerate(chosen)}
    return [
        {
            "index": int(index),
            "image": images[position],
            "mask": None if masks is None else masks[position],
            "overlays": {e: overlays[e][position] for e in explanations},
            "reasons": [chosen[int(index)]],
            "rank": rank[int(index)],
            "predictions": {
                key: int(value[index])
                for key, value in evaluation.predictions.items()
            },
        }
        for position, index in enumerate(indices)
    ]
