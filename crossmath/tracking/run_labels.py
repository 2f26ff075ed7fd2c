"""How a run reads in the MLflow UI: a name a person can scan, a one-paragraph description, the
command that made it.

A run name is ``model/data/modalities/id``: the model (``+`` the adapter's fingerprint when one
is loaded), the data in short (``gen-mixed-n12-s0`` for ``generated-mixed-n12-seed0``), the
modalities as the paper writes them (``T,I,TI``; ``+probe`` with the perception probe; the
task says what it asked: ``Questions.label_parts``) and the first characters of the evaluation
id. Everything before the id fits in ``NAME_LIMIT``
characters, the longest part cut first, so that runs of one model differ where the eye reads.
"""

from __future__ import annotations

import shlex
import sys
from typing import Mapping, Sequence

RUN_NOTE_TAG = "mlflow.note.content"  # MLflow's tag for a run's description
NAME_LIMIT = 40  # characters before the id
NAME_ID_CHARS = 12  # as the results folder is named
ELLIPSIS = "…"


def model_label(name: str, adapter_fingerprint: str | None = None) -> str:
    """The model's name, with ``+`` and the adapter's fingerprint when one is loaded."""
    return name if not adapter_fingerprint else f"{name}+{adapter_fingerprint[:6]}"


def run_name(parts: Sequence[str], run_id: str, limit: int = NAME_LIMIT) -> str:
    """``parts`` joined by ``/`` in at most ``limit`` characters, then ``/`` and the first
    ``NAME_ID_CHARS`` of ``run_id``. Parts too long are cut to one common length, the
    longest ones only, each cut marked ``…``: short parts (the modalities) stay whole."""
    parts = [part for part in parts if part]
    budget = limit - (len(parts) - 1)  # the separators
    if budget < 2 * len(parts):
        raise ValueError(f"{len(parts)} name parts cannot fit in {limit} characters")
    cap = max(len(part) for part in parts)
    while sum(min(len(part), cap) for part in parts) > budget:
        cap -= 1
    fitted = [part if len(part) <= cap else part[:cap - 1] + ELLIPSIS for part in parts]
    return "/".join([*fitted, run_id[:NAME_ID_CHARS]])


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command this process runs, as typed: ``python -m crossmath.run model=...`` for a
    module run with ``-m``, else the script and its arguments."""
    argv = list(sys.argv if argv is None else argv)
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = ["python", "-m", spec.name] if spec is not None and spec.name else argv[:1]
    return " ".join(shlex.quote(word) for word in [*head, *argv[1:]])


def command_name(argv: Sequence[str] | None = None) -> str:
    """The command without its arguments (``crossmath.run``): the runs table's Source."""
    words = shlex.split(command_line(argv))
    return words[2] if words[:2] == ["python", "-m"] and len(words) > 2 else (words or ["?"])[0]


def headline_text(headline: Mapping[str, float]) -> str:
    """``acc/text 95.0, acc/image 40.0, acc/gap_T-I +55.0``: gaps signed."""
    return ", ".join(f"{name} {value:+.1f}" if "gap" in name else f"{name} {value:.1f}"
                     for name, value in headline.items())


def evaluation_note(*, model: str, asked: str, command: str, n_requests: int | None = None,
                    n_failed: int | None = None, headline: Mapping[str, float] | None = None,
                    out_dir: str | None = None) -> str:
    """The run's description (``mlflow.note.content``), one paragraph: what was run and, once
    it is scored, how many requests failed and the headline numbers."""
    sentences = [f"**{model}** on {asked}."]
    if n_requests is None:
        sentences.append("Running (or stopped before it was scored).")
    else:
        failed = ("all answered" if not n_failed
                  else f"{n_failed} failed, counted as wrong (rerun the command to retry them)")
        sentences.append(f"{n_requests} requests, {failed}.")
    if headline:
        sentences.append(f"Headline: {headline_text(headline)} (percent; gaps in points).")
    sentences.append(f"Command: `{command}`.")
    if out_dir:
        sentences.append(f"Results: `{out_dir}`.")
    return " ".join(sentences)
