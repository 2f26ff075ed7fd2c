"""MMMU's own evaluation of replies, ported to behave exactly as the official script does.

MMMU's ``mmmu/utils/eval_utils.py`` (MMMU-Benchmark/MMMU) scores a reply in two steps, both
kept here to the letter, so that ``official`` gives the number the official script prints
for the same replies:

- **Multiple choice** (``parse_choice``): the reply, stripped of ``, . ! ? ; : '`` at its
  ends (one character kind after the other) and padded with a space, is searched for
  ``(A)``-style letters, else for letters standing between spaces, else (replies of more
  than five words only) for option texts, case aside; of several candidates the one found
  last wins. When nothing is found, the official script picks an option **at random**:
  ``random.choice`` over the option letters, from a generator seeded with 42 when the script
  starts, so the pick depends on every earlier pick of the run. ``official_verdicts``
  replays one run per sample: subjects in the script's order (``SUBJECT_ORDER``), items in
  dataset order within a subject, one seeded generator per run.
- **Open** (``parse_open``, ``eval_open``): key responses after the indicators, the numbers
  in them, normalised (floats rounded to two decimals, lower-cased text, one-character text
  padded with a space), deduplicated; right when a number equals a gold number or a gold
  text occurs in a text candidate.

Nothing here is MMMU's code: it is written from reading it, and
``tests/golden/make_mmmu_official_verdicts.py`` checks it against the official script.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from crossmath.tasks.transfer.final_answer import commits_to_answer
from crossmath.tasks.transfer.item import MULTIPLE_CHOICE, NO_ANSWER, Judgement, Reply, TaskItem

OFFICIAL_SEED = 42
# The order in which ``main_parse_and_eval.py --subject ALL`` visits the subjects: its
# ``CAT_SHORT2LONG`` dictionary, ordered by the short names.
SUBJECT_ORDER = (
    "Accounting", "Agriculture", "Architecture_and_Engineering", "Art", "Art_Theory",
    "Basic_Medical_Science", "Biology", "Chemistry", "Clinical_Medicine", "Computer_Science",
    "Design", "Diagnostics_and_Laboratory_Medicine", "Economics", "Electronics",
    "Energy_and_Power", "Finance", "Geography", "History", "Literature", "Manage", "Marketing",
    "Materials", "Math", "Mechanical_Engineering", "Music", "Pharmacy", "Physics",
    "Psychology", "Public_Health", "Sociology",
)
_STRIPPED_ENDS = (",", ".", "!", "?", ";", ":", "'")
_TRIVIAL_KEYS = (":", ",", ".", "!", "?", ";", ":", "'")
_INDICATORS = ("could be ", "so ", "is ", "thus ", "therefore ", "final ", "answer ", "result ")
_SENTENCES = re.compile(r"\.\s(?=[A-Z])|\n")
_WITH_COMMAS = re.compile(r"-?\b\d{1,3}(?:,\d{3})+\b")
_SCIENTIFIC = re.compile(r"-?\d+(?:\.\d+)?[eE][+-]?\d+")
_SIMPLE = re.compile(r"-?(?:\d+\.\d+|\.\d+|\d+\b)(?![eE][+-]?\d+)(?![,\d])")

Candidate = float | str


@dataclass(frozen=True)
class ChoiceParse:
    """The letter the official parser reads, and whether it was a random pick."""

    letter: str
    guessed: bool


def parse_choice(response: str, letters: Sequence[str], texts: Mapping[str, str],
                 rng: random.Random) -> ChoiceParse:
    """``parse_multi_choice_response``: the letter read from ``response``; a random one
    (drawn from ``rng``) when none can be read."""
    for char in _STRIPPED_ENDS:
        response = response.strip(char)
    response = f" {response} "
    candidates = [letter for letter in letters if f"({letter})" in response]
    bracketed = bool(candidates)
    by_text = False
    if not candidates:
        candidates = [letter for letter in letters if f" {letter} " in response]
    if not candidates and len(response.split()) > 5:
        candidates = [letter for letter, text in texts.items()
                      if text.lower() in response.lower()]
        by_text = bool(candidates)
    if not candidates:
        return ChoiceParse(rng.choice(list(letters)), True)
    if len(candidates) == 1:
        return ChoiceParse(candidates[0], False)
    if by_text:
        starts = [response.lower().rfind(texts[letter].lower()) for letter in candidates]
    elif bracketed:
        starts = [response.rfind(f"({letter})") for letter in candidates]
    else:
        starts = [response.rfind(f" {letter} ") for letter in candidates]
    return ChoiceParse(candidates[starts.index(max(starts))], False)  # the first of the latest


def key_responses(response: str) -> list[str]:
    """``get_key_subresponses``: per sentence, the shortest tail after an indicator."""
    response = response.strip().strip(".").lower()
    sentences = _SENTENCES.split(response)
    keys = []
    for index, sentence in enumerate(sentences):
        indicators = _INDICATORS + (("=",) if index == len(sentences) - 1 else ())
        shortest: str | None = None
        for indicator in indicators:
            if indicator in sentence:
                tail = sentence.split(indicator)[-1].strip()
                if not shortest or len(tail) < len(shortest):
                    shortest = tail  # an empty tail after a longer one wins, and drops the line
        if shortest and shortest.strip() not in _TRIVIAL_KEYS:
            keys.append(shortest)
    return keys or [response]


def extract_numbers(text: str) -> list[str]:
    """Numbers with thousands commas, then in scientific notation, then plain ones."""
    return [*_WITH_COMMAS.findall(text), *_SCIENTIFIC.findall(text), *_SIMPLE.findall(text)]


def normalize(text: str) -> list[Candidate]:
    """``normalize_str``: a number as a float rounded to two decimals, else lower-case text
    (a single character twice, padded with a space on either side)."""
    text = text.strip()
    try:
        return [round(float(text.replace(",", "")), 2)]
    except ValueError:
        pass
    text = text.lower()
    return [" " + text, text + " "] if len(text) == 1 else [text]


def parse_open(response: str) -> list[Candidate]:
    """``parse_open_response``: the key responses and their numbers, normalised, each once."""
    keys = key_responses(response)
    return normalized_candidates([*keys, *(number for key in keys
                                           for number in extract_numbers(key))])


def normalized_candidates(texts: Sequence[str]) -> list[Candidate]:
    """Every text normalised (``normalize``), each value once, in order."""
    found: list[Candidate] = []
    for text in texts:
        for value in normalize(text):
            if value not in found:
                found.append(value)
    return found


def eval_open(gold: str | Sequence[str], found: Sequence[Candidate]) -> bool:
    """``eval_open``: a candidate number equal to a gold number, or a gold text inside a
    candidate text."""
    golds = [gold] if isinstance(gold, str) else list(gold)
    wanted = [value for answer in golds for value in normalize(answer)]
    for candidate in found:
        if isinstance(candidate, str):
            if any(isinstance(value, str) and value in candidate for value in wanted):
                return True
        elif candidate in wanted:
            return True
    return False


def eval_choice(gold: str | Sequence[str], letter: str) -> bool:
    """``eval_multi_choice``: the letter equals the gold (or one of a list of golds)."""
    return letter in gold if not isinstance(gold, str) else letter == gold


def official_verdicts(replies: Sequence[Reply]) -> list[Judgement]:
    """MMMU's verdict on each reply, in the order given (items in dataset order).

    Each sample's replies are one run of the official script: a generator seeded with
    ``OFFICIAL_SEED``, the items visited subject by subject in ``SUBJECT_ORDER``. A failed
    request has no reply to parse: it is wrong and takes no random pick (the number equals
    the official script's for a run whose every request was answered). A random pick is
    recorded with its chance (1 / the number of options, when the gold is one of them).
    """
    position = {id(reply): index for index, reply in enumerate(replies)}
    verdicts: dict[int, Judgement] = {}
    for sample in sorted({reply.sample for reply in replies}):
        rng = random.Random(OFFICIAL_SEED)
        run = sorted((reply for reply in replies if reply.sample == sample),
                     key=lambda reply: (_subject_rank(reply.item), position[id(reply)]))
        for reply in run:
            verdicts[position[id(reply)]] = _verdict(reply, rng)
    return [verdicts[index] for index in range(len(replies))]


def _subject_rank(item: TaskItem) -> int:
    subject = item.breakdown.get("subject")
    return SUBJECT_ORDER.index(subject) if subject in SUBJECT_ORDER else len(SUBJECT_ORDER)


def _verdict(reply: Reply, rng: random.Random) -> Judgement:
    item = reply.item
    gold = item.gold[0] if len(item.gold) == 1 else list(item.gold)
    if reply.output is None:
        return NO_ANSWER
    if item.question_type == MULTIPLE_CHOICE:
        parsed = parse_choice(reply.output, item.letters, dict(item.options), rng)
        correct = eval_choice(gold, parsed.letter)
        if not parsed.guessed:
            return Judgement(parsed.letter, correct)
        chance = sum(letter in item.gold for letter in item.letters) / len(item.letters)
        return Judgement(parsed.letter, correct, answered=False, chance=chance)
    found = parse_open(reply.output)
    correct = eval_open(gold, found)
    return Judgement(" | ".join(map(str, found)), correct,
                     answered=correct or commits_to_answer(reply.output))
