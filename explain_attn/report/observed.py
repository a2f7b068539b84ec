"""The report's evaluation pass: its contributors, chunks and reduce.

`report_contributors` lists what the report computes from every image
(`explain_attn.report.contributions`); `report_chunk_size` is how the
pass cuts the test set (shards are runs of these chunks); `observed_from`
reduces the combined contributions to what the later stages read. A single
run (`explain_attn.report.build`), a shard (`explain_attn.report.shards`)
and a merge (`explain_attn.report.merge`) use these three.
"""

from explain_attn.models.lookup import resolve_layers
from explain_attn.report.baselines import BaselineValues
from explain_attn.report.channels import ChannelStatistics
from explain_attn.report.evaluate import (
    Scores,
    batch_size_for,
    chunk_size_for,
    predictions_of,
)
from explain_attn.report.explorer import Thumbnails
from explain_attn.report.warnings import MapStatistics, MaskShares

__all__ = [
    "channel_paths",
    "observed_from",
    "report_chunk_size",
    "report_contributors",
]


def report_contributors(
    models,
    explanations,
    reference,
    test,
    *,
    layers,
    batch_size,
    strategy=None,
):
    """Name -> `Contributor` of the report's pass: the scores, and
    everything else that needs every image (baselines, mask shares, map
    statistics, channel weights, thumbnails)."""
    return {
        "evaluation": Scores(explanations, reference),
        "baselines": BaselineValues(),
        "masks": MaskShares(),
        "maps": MapStatistics(explanations),
        "channels": ChannelStatistics(
            models,
            num_classes=len(test.class_names),
            layers=channel_paths(models, layers),
            batch_size=batch_size,
            strategy=strategy,
        ),
        "thumbnails": Thumbnails(
            explanations,
            count=len(test.labels),
            image_shape=tuple(test.image_shape)[:2],
        ),
    }


def report_chunk_size(test, batch_size, chunk_size=None):
    """Images per chunk of the report's pass over ``test``: ``chunk_size``,
    or `chunk_size_for` the images when ``None``."""
    if chunk_size is not None:
        return chunk_size
    shape = tuple(test.image_shape)
    return chunk_size_for(shape, batch_size=batch_size_for(shape, batch_size))


def observed_from(contributors, total):
    """The reduce: each contributor reads its share of the combined `Part`
    ``total``; returns the contributors by name, and ``evaluation`` (an
    `Evaluation`) in place of the scores."""
    for name, contributor in contributors.items():
        contributor.load(total.section(name))
    observed = dict(contributors)
    observed["evaluation"] = contributors["evaluation"].evaluation(
        predictions_of(total)
    )
    return observed


def channel_paths(models, layers):
    """The channel modules' paths ``layers`` names (``None``: all)."""
    if layers is None:
        return None
    paths = []
    for entry in models:
        if entry.role == "attention":
            paths += resolve_layers(entry.model, layers)
    return paths
