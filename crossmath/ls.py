"""``crossmath ls [KIND ...]``: what the commands' options can name, one line each.

Models, styles, tasks, evaluation data, prompt sets, fine-tuning methods, recipes, training
sets and protocols, each name with the first sentence of its own description: the comment at
the top of its config file (``conf/<group>/<name>.yaml``, shipped as ``crossmath.conf``) or of
its prompt set. Nothing here is a hand-kept list of names: a config file added to a group is
listed.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from importlib import resources
from typing import Iterator, Sequence

from crossmath.models.prompts import TEMPLATE_DIR, load_prompt_template
from crossmath.models.release_prompt import RELEASE_PROMPT
from crossmath.models.release_prompt import __doc__ as RELEASE_DOC
from crossmath.orchestration.door import JobParser, job_entry

CONFIGS = "crossmath.conf"
PROMPTS = "prompts"


@dataclass(frozen=True)
class Kind:
    """One kind of name: the config group it comes from and how an option names it."""

    name: str
    group: str
    option: str


KINDS = (
    Kind("models", "model", "model=NAME"),
    Kind("styles", "style", "styles=[NAME,...]"),
    Kind("tasks", "task", "task=NAME"),
    Kind("data", "data", "data=NAME"),
    Kind(PROMPTS, "", "model.prompt=NAME"),
    Kind("methods", "method", "crossmath train method=NAME"),
    Kind("recipes", "recipe", "crossmath train recipe=NAME"),
    Kind("datasets", "dataset", "crossmath train dataset=NAME"),
    Kind("protocols", "protocol", "+protocol=NAME"),
)
_SENTENCE_END = re.compile(r"\.(\s|$)")
MAX_DESCRIPTION = 100  # characters; a longer sentence is cut at a word, with an ellipsis


def entries(kind: Kind) -> list[tuple[str, str]]:
    """``(name, description)`` of every name of ``kind``, sorted by name."""
    if kind.name == PROMPTS:
        return prompt_sets()
    folder = resources.files(CONFIGS) / kind.group
    return sorted((item.name.removesuffix(".yaml"), description(item.read_text(encoding="utf-8")))
                  for item in folder.iterdir() if item.name.endswith(".yaml"))


def prompt_sets() -> list[tuple[str, str]]:
    """The shipped prompt sets (with the id each records) and the release's instructions."""
    found = [(RELEASE_PROMPT, first_sentence((RELEASE_DOC or "").replace("``", "")))]
    for path in sorted(TEMPLATE_DIR.glob("*.yaml")):
        text = description(path.read_text(encoding="utf-8")).removesuffix(".")
        found.append((path.stem, f"{text} (id {load_prompt_template(path.stem).id})."))
    return sorted(found)


def description(text: str) -> str:
    """The first sentence of a YAML file's leading comment. Hydra's ``@package`` line and
    indented examples are left out; a line ending in a colon ends the sentence."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        words = line[1:]
        if words.strip().startswith("@") or words.startswith("   ") or not words.strip():
            if lines:
                break
            continue
        lines.append(words.strip())
        if words.rstrip().endswith(":"):
            break
    return first_sentence(" ".join(lines)).removesuffix(":")


def first_sentence(text: str) -> str:
    """Up to the first full stop that ends a sentence (not one inside a name like ``v1.1``)."""
    text = " ".join(text.split())
    match = _SENTENCE_END.search(text)
    return text[:match.start() + 1] if match else text


def listing(kinds: Sequence[Kind]) -> Iterator[str]:
    """The lines ``crossmath ls`` prints: a heading per kind, then one line per name."""
    for kind in kinds:
        found = entries(kind)
        yield f"{kind.name} ({kind.option}):"
        width = max(len(name) for name, _ in found)
        for name, text in found:
            yield f"  {name:<{width}}  {shortened(text)}"


def shortened(text: str) -> str:
    """``text``, or its first ``MAX_DESCRIPTION`` characters to a word's end and an ellipsis."""
    if len(text) <= MAX_DESCRIPTION:
        return text
    return text[:text.rfind(" ", 0, MAX_DESCRIPTION)].rstrip(",;:") + " …"


def main(argv: Sequence[str] | None = None, prog: str = "crossmath ls") -> int:
    parser = JobParser(prog=prog, description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    names = [kind.name for kind in KINDS]
    parser.add_argument("kinds", nargs="*", metavar="KIND",
                        help=f"any of {', '.join(names)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [name for name in args.kinds if name not in names]
    if unknown:
        parser.error(f"no kind named {unknown[0]!r}; choose from {', '.join(names)}")
    chosen = [kind for kind in KINDS if not args.kinds or kind.name in args.kinds]
    for line in listing(chosen):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(job_entry("python -m crossmath.ls", lambda: main(prog="python -m crossmath.ls")))
