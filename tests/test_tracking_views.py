"""How an evaluation reads in MLflow: run names, headline numbers, the browsable prediction table
(rows scored as the scorecard scores them, the images the model saw) and the dataset input."""

from __future__ import annotations

import io
import json

import mlflow
import pyarrow as pa
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from crossmath.metrics.answers import answer_block
from crossmath.metrics.scorecard import evaluate_predictions
from crossmath.metrics.transcription import TRANSCRIBE, TRANSCRIBED
from crossmath.pipeline.shards import PREDICTION_SCHEMA
from crossmath.puzzle.table import puzzles_to_table
from crossmath.settings.checks import resolved_styles
from crossmath.summary.headline import crossmath_headline
from crossmath.tasks.crossmath.prediction_table import puzzle_prediction_table
from crossmath.tasks.crossmath.questions import modalities_label
from crossmath.tasks.crossmath.sources import generated_puzzles, official_puzzles
from crossmath.tasks.prediction_table import COLUMNS, OUTPUT_CHARS
from crossmath.tasks.questions import data_label
from crossmath.tracking import datasets, evaluation_table
from crossmath.tracking import mlflow_store as tracking
from crossmath.tracking.run_labels import NAME_LIMIT, model_label, run_name


def test_run_names_fit_forty_characters_before_the_id_cutting_the_longest_part():
    name = run_name([model_label("tiny-random"), data_label("generated-mixed-n12-seed0"),
                     modalities_label(["text", "image", "hybrid"])], "2b1416fcfc74cf0e4982")
    assert name == "tiny-random/gen-mixed-n12-s0/T,I,TI/2b1416fcfc74"
    long = run_name(["qwen2.5-vl-7b-instruct-awq+a1b2c3", "official-release-subset-n1000",
                     modalities_label(["text", "image", "hybrid", "transcribe"])], "ff" * 10)
    prefix, _, short_id = long.rpartition("/")
    assert len(prefix) == NAME_LIMIT and short_id == "ff" * 6
    model, data, modalities = prefix.split("/")
    assert modalities == "T,I,TI+probe"  # the short part is kept whole
    assert model.startswith("qwen2.5-vl") and model.endswith("…") and data.endswith("…")
    assert model_label("m", "0123456789abcdef") == "m+012345"


def test_headline_numbers_are_the_pooled_macro_accuracies_and_the_gaps():
    puzzles = generated_puzzles(6, "easy", 0).puzzles
    rows = []
    for i, puzzle in enumerate(puzzles):
        for modality, right in (("text", True), ("image", i < 2), ("hybrid", i < 4)):
            for style in (["markdown"] if modality == "text" else ["original", "beige"]):
                rows.append({"puzzle_id": puzzle.puzzle_id, "model": "m", "modality": modality,
                             "style": style, "sample": 0,
                             "output": answer_block(puzzle.answer if right else ["x"])})
    evaluation = evaluate_predictions(rows, puzzles_to_table(puzzles), n_resamples=200)
    headline = crossmath_headline(evaluation, "m")
    assert list(headline) == ["acc/text", "acc/image", "acc/hybrid", "acc/gap_T-I",
                              "acc/gap_T-TI"]
    assert headline["acc/text"] == 100.0
    assert headline["acc/image"] == pytest.approx(100 * 2 / 6)
    assert headline["acc/gap_T-I"] == evaluation.gap("m", "T-I", "macro_acc").estimate.gap
    assert headline["acc/gap_T-TI"] == pytest.approx(100 - 100 * 4 / 6)
    flat = evaluation.flat_metrics("m")
    assert not any(name.startswith(f"{key}/") for key in headline for name in flat)


def _prediction(puzzle, modality, style, sample, output, error=None):
    return {"request_id": f"{puzzle.puzzle_id}-{modality}-{style}-{sample}",
            "puzzle_id": puzzle.puzzle_id, "name": puzzle.name, "difficulty": puzzle.difficulty,
            "modality": modality, "style": style, "sample": sample, "prompt_id": "p",
            "model": "m", "output": output, "pred": None, "n_prompt_tokens": 1,
            "n_output_tokens": 1, "latency_s": 0.0, "error": error, "finish_reason": "stop",
            "attempt": 1}


def test_the_prediction_table_scores_each_row_and_shows_each_image_once(official_jsonl):
    styles = resolved_styles(["original", "beige"])
    puzzle_set = official_puzzles(str(official_jsonl), styles, limit=2)
    first, second = puzzle_set.puzzles
    wrong = list(second.answer)
    wrong[0] = str(int(wrong[0]) + 1)
    grid_table = first.grid.to_markdown()
    rows = [
        _prediction(first, "text", "markdown", 0, "thinking...\n" + answer_block(first.answer)),
        _prediction(second, "image", "original", 0, answer_block(wrong)),
        _prediction(second, "image", "original", 1, None, error="backend crashed"),
        _prediction(first, "hybrid", "beige", 0, "x" * (2 * OUTPUT_CHARS)
                    + answer_block(first.answer)),
        _prediction(first, TRANSCRIBE, "beige", 0, f"Here it is:\n{grid_table}"),
        _prediction(first, TRANSCRIBED, "beige", 0, answer_block(first.answer)),
    ]
    table = puzzle_prediction_table(pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA),
                                    puzzle_set, styles)
    assert all(list(cells) == list(COLUMNS) for cells in table.rows) and len(table.rows) == 6
    cells_of = {(cells["puzzle"], cells["modality"], cells["style"], cells["sample"]): cells
                for cells in table.rows}
    by_request = {row["request_id"]: cells_of[row["name"], row["modality"], row["style"],
                                              row["sample"]] for row in rows}
    assert [(cells["puzzle"], cells["modality"]) for cells in table.rows] == [
        (first.name, "hybrid"), (first.name, TRANSCRIBE), (first.name, "text"),
        (first.name, TRANSCRIBED), (second.name, "image"), (second.name, "image")]

    text = by_request[rows[0]["request_id"]]
    assert (text["correct"], text["answer"], text["image"]) == (True, ", ".join(first.answer), None)
    assert text["gold"] == ", ".join(first.answer) and text["puzzle"] == first.name
    misread = by_request[rows[1]["request_id"]]
    assert misread["correct"] is False and misread["answer"] == ", ".join(wrong)
    failed = by_request[rows[2]["request_id"]]
    assert (failed["correct"], failed["answer"], failed["error"]) == (False, None,
                                                                      "backend crashed")
    assert failed["image"] == misread["image"]  # one image per puzzle and style
    hybrid = by_request[rows[3]["request_id"]]
    assert hybrid["correct"] is True and len(hybrid["output"]) == OUTPUT_CHARS + 1
    assert hybrid["output"].endswith("</answer>")  # the tail, where the answer is
    transcription = by_request[rows[4]["request_id"]]
    assert transcription["correct"] is True and transcription["image"] == hybrid["image"]
    assert by_request[rows[5]["request_id"]]["image"] is None  # T̂ is solved as text

    assert set(table.images) == {misread["image"], hybrid["image"]}
    release_file = puzzle_set.official_images[(second.name, "original")]
    assert table.images[misread["image"]] == release_file.read_bytes()  # the release's own file
    with Image.open(io.BytesIO(table.images[hybrid["image"]])) as rendered:
        assert rendered.format == "PNG" and rendered.width > 100  # beige: rendered here

    bare = puzzle_prediction_table(pa.Table.from_pylist(rows, schema=PREDICTION_SCHEMA),
                                   puzzle_set, styles, with_images=False)
    assert bare.images == {} and all(row["image"] is None for row in bare.rows)


@pytest.fixture
def uri(tracking_db, monkeypatch) -> str:
    uri = f"sqlite:///{tracking_db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # mlflow.load_table reads the global store
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "crossmath")  # and the active experiment
    return uri


def _run(uri: str) -> str:
    return tracking.open_evaluation_run(tracking_uri=uri, experiment="crossmath",
                                        evaluation_id="e1", run_name="m/d/T/e1", params={},
                                        tags={})


def test_the_logged_table_loads_with_one_row_per_prediction_even_when_resumed(uri):
    run_id = _run(uri)
    png = io.BytesIO()
    Image.new("RGB", (30, 20), (200, 10, 10)).save(png, format="PNG")
    rows = [{"puzzle": "p", "modality": "image", "style": "beige", "sample": s,
             "correct": s == 0, "answer": "1, 2", "gold": "1, 2", "image": "p-beige",
             "output": "<answer>1 2</answer>", "error": None} for s in range(3)]
    rows.append({**rows[0], "modality": "text", "style": "markdown", "image": None})
    rows.append({**rows[0], "puzzle": "q", "image": "q-beige"})  # its file is truncated
    images = {"p-beige": png.getvalue(), "q-beige": png.getvalue()[:40]}
    for _ in range(2):  # logged again by a resumed evaluation: replaced, not appended
        evaluation_table.log_evaluation_table(uri, run_id, rows, images, COLUMNS)
    loaded = mlflow.load_table(evaluation_table.TABLE_FILE, run_ids=[run_id])
    assert len(loaded) == 5 and list(loaded.columns) == list(COLUMNS)
    assert loaded["correct"].tolist() == [True, False, False, True, True]
    cell = loaded["image"][0]
    assert cell == {"type": "image", "filepath": "table_images/p-beige.webp",
                    "compressed_filepath": "table_images/p-beige.webp"}
    assert loaded["image"][3] is None and loaded["image"][4] is None  # no image, unreadable
    client = MlflowClient(uri)
    assert [entry.path for entry in client.list_artifacts(run_id, "table_images")] == [
        "table_images/p-beige.webp"]
    with Image.open(client.download_artifacts(run_id, cell["filepath"])) as stored:
        assert stored.format == "WEBP"
        assert stored.convert("RGB").tobytes() == Image.open(png).convert("RGB").tobytes()
    logged = json.loads(client.get_run(run_id).data.tags["mlflow.loggedArtifacts"])
    assert logged == [{"path": "evaluation_table.json", "type": "table"}]


def test_a_dataset_input_carries_our_fingerprint_as_its_digest(uri, tmp_path):
    run_id = _run(uri)
    client = MlflowClient(uri)
    generated = generated_puzzles(3, "easy", 0)
    datasets.log_dataset(uri, run_id, datasets.DatasetRef(
        "generated-easy-n3-seed0", generated.fingerprint, generated.source,
        generated.source_type), "evaluation")
    datasets.log_dataset(uri, run_id, datasets.DatasetRef.of_path("train", "f" * 40,
                                                                  tmp_path / "set"), "training")
    datasets.log_dataset(uri, run_id, datasets.DatasetRef("official", "abc", "xuyige/CrossMath",
                                                          "hugging_face"), "evaluation")
    inputs = {entry.dataset.name: entry for entry in client.get_run(run_id).inputs.dataset_inputs}
    gen = inputs["generated-easy-n3-seed0"]
    assert gen.dataset.digest == generated.fingerprint and gen.dataset.source_type == "code"
    assert json.loads(gen.dataset.source)["tags"]["command"] == (
        "python -m crossmath.generate n=3 difficulty=easy seed=0")
    assert {t.key: t.value for t in gen.tags} == {"mlflow.data.context": "evaluation"}
    train = inputs["train"]
    assert train.dataset.digest == "f" * 36 and train.dataset.source_type == "local"
    assert json.loads(train.dataset.source) == {"uri": str(tmp_path / "set")}
    assert {t.key: t.value for t in train.tags} == {"mlflow.data.context": "training",
                                                    "fingerprint": "f" * 40}
    assert json.loads(inputs["official"].dataset.source)["path"] == "xuyige/CrossMath"
    with pytest.raises(ValueError, match="source_type must be one of"):
        datasets.DatasetRef("x", "y", "z", "ftp")
