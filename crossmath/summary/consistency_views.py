"""The official records lint flags, shown beside the scores: which they are, the oracle's
ceiling they leave, and the accuracies over the records lint passes (``consistent/...``)."""

from __future__ import annotations

from crossmath.metrics.rows import ALL
from crossmath.metrics.scorecard import Evaluation
from crossmath.puzzle.consistency import Consistency
from crossmath.summary.cells import stat_cell
from crossmath.summary.views import accuracy_table


def consistency_console(consistency: Consistency, consistent: Evaluation | None,
                        model: str) -> list[str]:
    """Two lines for the console: the ceiling, and macro accuracy over the consistent records."""
    lines = [f"lint flags {len(consistency.flagged)} of {consistency.n_records} records; the "
             f"oracle's ceiling on them all is {consistency.oracle_ceiling:.1f}% (macro)"]
    if consistent is not None:
        cells = [f"{modality} {stat_cell(group.metric('macro_acc'))}"
                 for modality in consistent.modalities(model)
                 if (group := consistent.group(model, modality, ALL)) is not None]
        lines.append(f"over the {consistency.n_records - len(consistency.flagged)} records lint "
                     f"passes (consistent/...): macro {', '.join(cells)}")
    return lines


def consistency_section(consistency: Consistency, consistent: Evaluation | None,
                        model: str) -> list[str]:
    """The report's section on the records lint flags."""
    lines = ["## Records lint flags", "",
             f"`crossmath.lint` flags {len(consistency.flagged)} of {consistency.n_records} "
             "records (the grid contradicts the record's own solution, or has no unique "
             "solution). They are scored like the rest above, as the release does. The oracle "
             f"(the solver, the text modality's ceiling) scores **{consistency.oracle_ceiling:.1f}%"
             "** macro on all the records.", "",
             "| puzzle | lint |", "|---|---|"]
    lines += [f"| {name} | {status} |" for _, name, status in consistency.flagged]
    lines.append("")
    if consistent is not None:
        lines += [f"Accuracy over the {consistency.n_records - len(consistency.flagged)} records "
                  "lint passes (MLflow: `consistent/...`):", "",
                  *accuracy_table(consistent, model, [ALL]), ""]
    return lines
