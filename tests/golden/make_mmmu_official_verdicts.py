"""Run MMMU's own evaluation code over the test replies and write what it decides (a
developer's tool; the tests read its output, ``tests/golden/mmmu_official.json``).

MMMU's ``mmmu/utils/eval_utils.py`` and ``data_utils.py`` are imported from a local copy of
the MMMU-Benchmark/MMMU repository (never committed here)::

    git -C /path/to/MMMU-mirror archive bb0b95a9 mmmu/utils | tar -x -C /tmp/MMMU
    python tests/golden/make_mmmu_official_verdicts.py --mmmu /tmp/MMMU

Two runs, each as ``main_parse_and_eval.py --subject ALL`` would make it (the random
generator seeded when the script starts; subjects in its ``CAT_SHORT2LONG`` order; replies
in dataset order within a subject), scored with ``evaluate`` against ``answer_dict_val.json``'s
ground truths (the answers of tests/fixtures/mmmu_validation_answers.jsonl):

- ``answer_key``: the answer-key double's reply to each of the 900 questions;
- ``table``: the realistic replies of tests/fixtures/mmmu_replies.jsonl.

Each item's parsed prediction (a letter, or the open answer's candidates as sorted text)
and verdict are written, with the run's accuracy.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from crossmath.metrics.answers import answer_block  # noqa: E402
from tests.doubles import ANSWER_KEY_PREAMBLE  # noqa: E402
from tests.transfer_fixtures import FIXTURES, MMMU_ANSWERS, mmmu_questions, read_fixture  # noqa: E402

MMMU_COMMIT = "bb0b95a945998d91dfef37e969e07d49d1139438"
OUT = Path(__file__).resolve().parent / "mmmu_official.json"


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def answer_key_replies() -> dict[str, str]:
    """What the answer-key double replies: the letter, or the first accepted open answer."""
    replies = {}
    for question in mmmu_questions():
        gold = question["ground_truth"]
        answer = gold if isinstance(gold, str) else gold[0]
        replies[question["id"]] = ANSWER_KEY_PREAMBLE + answer_block([answer])
    return replies


def official_run(eval_utils, subjects, replies: dict[str, str]) -> dict:
    """One run of MMMU's parse-and-evaluate over ``replies`` (id -> reply)."""
    questions = {question["id"]: question for question in mmmu_questions()}
    random.seed(42)  # as importing eval_utils does when the official script starts
    samples = []
    for subject in subjects:
        for item_id, response in replies.items():
            if "_".join(item_id.split("_")[1:-1]) != subject:
                continue
            question = questions[item_id]
            if question["question_type"] == "multiple-choice":
                letters = [chr(ord("A") + i) for i in range(len(question["options"]))]
                index2ans = dict(zip(letters, question["options"]))
                parsed = eval_utils.parse_multi_choice_response(response, letters, index2ans)
            else:
                parsed = eval_utils.parse_open_response(response)
            samples.append({"id": item_id, "question_type": question["question_type"],
                            "answer": question["ground_truth"], "parsed_pred": parsed})
    judged, metrics = eval_utils.evaluate(samples)
    return {"acc": metrics["acc"],
            "items": {sample["id"]: {
                "pred": (sample["parsed_pred"] if isinstance(sample["parsed_pred"], str)
                         else sorted(map(repr, sample["parsed_pred"]))),
                "correct": judged[sample["id"]] == "Correct"} for sample in samples}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mmmu", type=Path, required=True,
                        help="a local copy of MMMU-Benchmark/MMMU (holding mmmu/utils/)")
    args = parser.parse_args()
    utils = args.mmmu / "mmmu" / "utils"
    eval_utils = load_module(utils / "eval_utils.py", "mmmu_eval_utils")
    sys.modules.setdefault("yaml", __import__("yaml"))
    data_utils = load_module(utils / "data_utils.py", "mmmu_data_utils")
    subjects = list(data_utils.CAT_SHORT2LONG.values())
    table = {row["id"]: row["reply"] for row in read_fixture(FIXTURES / "mmmu_replies.jsonl")[1]}
    golden = {
        "source": f"MMMU-Benchmark/MMMU at {MMMU_COMMIT}: mmmu/utils/eval_utils.py "
                  "(parse_multi_choice_response, parse_open_response, evaluate), subjects in "
                  "data_utils.CAT_SHORT2LONG order; answers: " + MMMU_ANSWERS.name,
        "subject_order": subjects,
        "runs": {"answer_key": official_run(eval_utils, subjects, answer_key_replies()),
                 "table": official_run(eval_utils, subjects, table)},
    }
    OUT.write_text(json.dumps(golden, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print({name: run["acc"] for name, run in golden["runs"].items()})


if __name__ == "__main__":
    main()
