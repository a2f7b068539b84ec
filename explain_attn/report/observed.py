"""The report's evaluation pass: its contributors, chunks and reduce.

`report_contributors` lists what the report computes from every image
(`explain_attn.report.contributions`); `report_chunk_size` is how the
pass cuts the test set (shards are runs of these chunks); `observed_from`
reduces the combined contributions to what the later stages read. A single
run (`explain_attn.report.build`), a shard (`explain_attn.report.shards`)
and a merge (`explain_attn.report.merge`) use these three.
"""

from explain_attn.models.lookup import resolve_layers
from explain_attn.report.evaluate import (
    batch_size_for,
    chunk_size_for,
    with_predictions,
)
from explain_attn.report.section import Run
from explain_attn.report.sections import contributors

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
    """Name -> `Contributor` of the report's pass: what every section of
    `explain_attn.report.sections.SECTIONS` observes (the scores, the
    baselines, mask shares and map statistics, channel weights and
    thumbnails)."""
    run = Run(
        models,
        explanations,
        reference,
        test,
        {
            "channel_layers": channel_paths(models, layers),
            "batch_size": batch_size,
            "strategy": strategy,
        },
    )
    return contributors(run)


def report_chunk_size(test, batch_size, chunk_size=None):
    """Images per chunk of the report's pass over ``test``: ``chunk_size``,
    or `chunk_size_for` the images when ``None``."""
    if chunk_size is not None:
        return chunk_size
    shape = tuple(test.image_shape)
    return chunk_size_for(shape, batch_size=batch_size_for(shape, batch_size))


def observed_from(contributors, total):
    """The reduce: name -> each contributor's result (`Contributor.reduce`
    of its share of the combined `Part` ``total``); ``evaluation`` (an
    `Evaluation`) gets the pass's predictions."""
    observed = {
        name: contributor.reduce(total.section(name))
        for name, contributor in contributors.items()
    }
    observed["evaluation"] = with_predictions(observed["evaluation"], total)
    return observed


def channel_paths(models, layers):
    """The channel modules' paths ``layers`` names (``None``: all)."""
    if layers is None:
        return None
    paths = []
    for entry in models:
        if entry.role == "attention":
            paths += resolve_layers(entry.state, layers)
    return paths
