"""The reduce side of a sharded report: every part in, one report out.

`merge_report` reads the parts folder (`explain_attn.report.shards.
read_parts` refuses a missing, duplicated, truncated or foreign part),
loads the models and data recorded in the parts, checks them against the
parts' fingerprint, and builds the report with the combined parts in place
of the evaluation pass; the gallery and the faithfulness checks read their
few images again. The numbers are those of a single run, bit for bit.
"""

from explain_attn.report.build import report_from_sources
from explain_attn.report.faithfulness import FaithfulnessSettings
from explain_attn.report.shards import Merged, read_parts

__all__ = ["merge_report"]


def merge_report(parts, **options):
    """The `Report` of the shards whose parts are in ``parts``.

    Args:
        parts: The parts folder.
        **options: ``verbose``, ``log``, ``command_line``, ``strategy``,
            ``drawer`` (passed to `report_from_sources`; the rest comes
            from the parts' record).

    Returns:
        A `explain_attn.report.build.Report` with a ``shards`` section
        (each shard's images and the worker, host and pid, that ran it).
    """
    merged = Merged(*read_parts(parts))
    run = dict(merged.metas[0]["run"])
    data = run.pop("data")
    faithfulness = run.get("faithfulness")
    if isinstance(faithfulness, dict):
        faithfulness["requested"] = tuple(faithfulness.get("requested", ()))
        run["faithfulness"] = FaithfulnessSettings(**faithfulness)
    return report_from_sources(data, **run, **options, shard=merged)
