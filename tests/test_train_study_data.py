"""dataset=crossmath-train: the study's training set read from its folder (records in the test
set's schema, images from the two archives without extracting), disjoint from the evaluation
sets by grid, defective records dropped, mixed with generated puzzles by config."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from crossmath.finetuning.dataset import (
    Exclusion,
    TrainingSetSpec,
    build_training_set,
    evaluation_puzzles,
)
from crossmath.finetuning.job import build_dataset
from crossmath.finetuning.study_data import StudyDataError, StudySource
from crossmath.settings.checks import ConfigError
from crossmath.settings.train import DatasetSettings
from tests.study_fixture import archive_image, write_study_folder


@pytest.fixture
def study(official_sample, tmp_path):
    return write_study_folder(official_sample, tmp_path / "study")


def _spec(**fields) -> TrainingSetSpec:
    return TrainingSetSpec(**{"sources": ("crossmath-train",), "styles": ("original", "noborder"),
                              "modalities": ("image", "text"), "target": "rationale", **fields})


def test_the_study_set_trains_on_its_own_images_and_drops_evaluation_puzzles(study, tmp_path) -> None:
    exclusion = Exclusion.of(evaluation_puzzles([], str(study.evaluation_jsonl)))
    built = build_training_set(_spec(), tmp_path / "set", exclusion, StudySource.open(str(study.folder)))
    counts = built.manifest["sources"]["crossmath-train"]
    assert counts == {"origin": f"file://{study.folder}", "files_fingerprint": counts["files_fingerprint"],
                      "records": 12, "kept": 7, "overlaps": 4, "defective": 1, "missing_images": 0}
    rows = built.read().to_pylist()
    assert sorted({row["name"] for row in rows}) == sorted(study.trained)
    assert not {row["name"] for row in rows} & {*study.overlapping, study.defective}
    for row in rows:
        if row["modality"] == "image":  # the archive's PNG, byte for byte, in each style
            assert row["image"] == archive_image(study, row["style"], row["name"])
        else:
            assert row["image"] is None and row["style"] == "markdown"
    assert len(rows) == 7 * 3  # image x 2 styles + text
    assert built.manifest["source"] == f"crossmath-train:file://{study.folder}"
    # the same files and spec give the same content fingerprint wherever the set is built
    again = build_training_set(_spec(), tmp_path / "again", exclusion, StudySource.open(str(study.folder)))
    assert again.manifest["content_fingerprint"] == built.manifest["content_fingerprint"]
    assert build_training_set(_spec(), tmp_path / "set", exclusion,
                              StudySource.open(str(study.folder))).manifest == built.manifest  # reused


def test_a_schema_without_the_test_sets_fields_is_one_line_naming_them(study, tmp_path) -> None:
    path = study.folder / "train_dataset_all.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    record = json.loads(lines[0])
    del record["markdown_answer_step"]
    path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n", encoding="utf-8")
    with pytest.raises(StudyDataError) as caught:
        build_training_set(_spec(), tmp_path / "set", study=StudySource.open(str(study.folder)))
    message = str(caught.value)
    assert "\n" not in message and "line 1: missing field(s) markdown_answer_step" in message
    del record["markdown_table"]
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    with pytest.raises(StudyDataError, match=r"line 1: missing field\(s\) markdown_table; expected"):
        build_training_set(_spec(), tmp_path / "set2", study=StudySource.open(str(study.folder)))


def test_a_style_the_study_did_not_ship_and_a_missing_folder_are_refused(study, tmp_path) -> None:
    with pytest.raises(StudyDataError, match="come in .*'noborder'.* not 'beige'"):
        build_training_set(_spec(styles=("beige",)), tmp_path / "set",
                           study=StudySource.open(str(study.folder)))
    with pytest.raises(StudyDataError, match="no train_dataset_all.jsonl there"):
        StudySource.open(str(tmp_path))


def test_the_config_mixes_the_study_set_with_generated_puzzles(study, tmp_path) -> None:
    def dataset(*overrides: str):
        with initialize_config_module("crossmath.conf", version_base="1.3"):
            cfg = compose("train", overrides=["model=tiny-random", f"out_dir={tmp_path}",
                                              f"dataset.path={study.folder}",
                                              f"dataset.exclude_official={study.evaluation_jsonl}",
                                              "dataset.n_puzzles=3", *overrides])
        return DatasetSettings.from_mapping(OmegaConf.to_container(cfg.dataset, resolve=True))

    theirs = build_dataset(dataset("dataset=crossmath-train", f"dataset.build_dir={tmp_path / 'a'}"))
    both = build_dataset(dataset("dataset=mixed", f"dataset.build_dir={tmp_path / 'b'}"))
    ours = build_dataset(dataset(f"dataset.build_dir={tmp_path / 'c'}"))
    assert (theirs.manifest["n_puzzles"], both.manifest["n_puzzles"], ours.manifest["n_puzzles"]) == (7, 10, 3)
    assert set(both.manifest["sources"]) == {"crossmath-train", "generated"}
    assert " + generated:seed=1000,n=3" in both.manifest["source"]
    names = {row["name"] for row in both.read(columns=["name"]).to_pylist()}
    assert set(study.trained) < names


def test_the_door_checks_the_study_folder(study, tmp_path) -> None:
    with initialize_config_module("crossmath.conf", version_base="1.3"):
        cfg = compose("train", overrides=["model=tiny-random", "dataset=crossmath-train",
                                          f"dataset.path={tmp_path / 'nowhere'}"])
    from omegaconf import OmegaConf

    options = OmegaConf.to_container(cfg.dataset, resolve=True)
    with pytest.raises(ConfigError, match="dataset.path"):
        DatasetSettings.from_mapping(options)
    DatasetSettings.from_mapping({**options, "path": str(study.folder)})
    with pytest.raises(ConfigError, match="no train_dataset_all.jsonl"):
        DatasetSettings.from_mapping({**options, "path": str(Path(study.folder).parent)})
