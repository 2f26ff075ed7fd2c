"""Checks of the options a command is given, made before any work starts.

Each check takes a value and ``where`` (the option as the user writes it: ``data.n``,
``styles[1]``, ``model.adapter``) and either returns the value, made usable, or raises a
``ConfigError`` that names the option and says what is wrong with it. They are cheap: they
read files and folders, never start Ray, never load a model.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence, TypeVar

from crossmath.core.errors import ConfigError
from crossmath.drawing.style import Style, StyleError, load_style
from crossmath.models.base import MODALITIES
from crossmath.models.contract import BackendSpec
from crossmath.models.prompts import PromptSet, PromptTemplateError, load_prompt_template
from crossmath.puzzle.model import DIFFICULTIES
from crossmath.puzzle.records import json_error
from crossmath.puzzle.synthesis import GeneratorConfig

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")

Built = TypeVar("Built")


def whole_number(value: Any, where: str, *, minimum: int = 1, maximum: int | None = None,
                 none_means: str | None = None) -> int | None:
    """An integer in ``[minimum, maximum]``; None is allowed when ``none_means`` says what it
    means."""
    if value is None and none_means is not None:
        return None
    if (isinstance(value, bool) or not isinstance(value, int) or value < minimum
            or (maximum is not None and value > maximum)):
        bounds = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        alternative = f" (or null for {none_means})" if none_means is not None else ""
        raise ConfigError(where, f"must be a whole number {bounds}{alternative}, got {value!r}")
    return value


def non_negative_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(where, f"must be a number >= 0, got {value!r}")
    return float(value)


def one_of(value: Any, where: str, choices: Iterable[str]) -> str:
    choices = list(choices)
    if value not in choices:
        raise ConfigError(where, f"must be one of {', '.join(choices)}; got {value!r}")
    return value


def modality_names(names: Any, where: str = "modalities",
                   known: Sequence[str] = MODALITIES) -> list[str]:
    """A non-empty list of ``known`` modalities."""
    names = name_list(names, where)
    if not names:
        raise ConfigError(where, f"is empty; give one or more of {', '.join(known)}")
    for index, name in enumerate(names):
        one_of(name, f"{where}[{index}]", known)
    return names


def resolved_styles(names: Any, where: str = "styles") -> dict[str, Style]:
    """Each style of a list (shipped names or paths of style files), read once: name as
    given -> ``Style``."""
    styles: dict[str, Style] = {}
    for index, name in enumerate(name_list(names, where)):
        try:
            styles[name] = load_style(name)
        except StyleError as error:
            raise ConfigError(f"{where}[{index}]", str(error)) from None
    return styles


def style_names(names: Any, where: str = "styles") -> list[str]:
    """A list of styles that exist and load (shipped names or paths of style files)."""
    return list(resolved_styles(names, where))


def name_list(names: Any, where: str) -> list[str]:
    """A list of non-empty names, as given (nothing they name is read)."""
    if isinstance(names, str) or not isinstance(names, Sequence):
        raise ConfigError(where, f"must be a list such as [a, b], got {names!r}")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}[{index}]", f"must be a name, got {name!r}")
    return list(names)


def resolved_prompt_set(name: Any, where: str) -> PromptSet:
    """The prompt set a shipped name or the path of a YAML file names, read once."""
    try:
        return load_prompt_template(name)
    except PromptTemplateError as error:
        raise ConfigError(where, str(error)) from None


def existing_path(value: Any, where: str) -> Path:
    """A file or folder that exists."""
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"must be a path, got {value!r}")
    path = Path(value).expanduser()
    if not path.exists():
        raise ConfigError(where, f"{path} does not exist")
    return path


def non_empty_file(path: Path, where: str) -> Path:
    """A file that holds more than whitespace: an empty input is refused at the door, not
    found empty-handed after the work has started."""
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 16):
            if chunk.strip():
                return path
    raise ConfigError(where, f"{path} is empty")


def adapter_folder(value: Any, where: str) -> Path:
    """A PEFT adapter folder: its config is a JSON object and its weights are there."""
    folder = existing_path(value, where)
    if not folder.is_dir():
        raise ConfigError(where, f"{folder} is a file; an adapter is the folder holding "
                                 f"{ADAPTER_CONFIG} and {ADAPTER_WEIGHTS[0]}")
    config = folder / ADAPTER_CONFIG
    if not config.is_file():
        raise ConfigError(where, f"{folder} holds no {ADAPTER_CONFIG}: not an adapter folder "
                                 "(crossmath.train writes one to <out_dir>/adapter)")
    try:
        fields = json.loads(config.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(where, f"{config} is not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise ConfigError(where, f"{config} is not valid JSON: {json_error(error)}") from None
    if not isinstance(fields, dict):
        raise ConfigError(where, f"{config} must hold a JSON object, not "
                                 f"{type(fields).__name__}")
    if not any((folder / name).is_file() for name in ADAPTER_WEIGHTS):
        raise ConfigError(where, f"{folder} holds no adapter weights ({' or '.join(ADAPTER_WEIGHTS)})")
    return folder


def writable_folder(value: Any, where: str) -> None:
    """A folder this process can write to, or create; URIs (``s3://...``) are left to pyarrow."""
    if not isinstance(value, str) or not value:
        raise ConfigError(where, f"must be a folder or a URI, got {value!r}")
    if "://" in value and not value.startswith("file://"):
        return
    path = Path(value.removeprefix("file://")).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(where, f"{path} is a file, not a folder")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(where, f"{path} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        made = "written to" if existing == path else f"created ({existing} is not writable)"
        raise ConfigError(where, f"{path} cannot be {made}")
    try:  # what access() cannot tell (a read-only mount, /proc, a full disk): try, leave nothing
        with tempfile.TemporaryDirectory(dir=existing, prefix=".crossmath-check-"):
            pass
    except OSError as error:
        raise ConfigError(where, f"{path} cannot be created in {existing} "
                                 f"({error.strerror or error})") from None


def existing_tracking_store(uri: Any, where: str) -> str:
    """A tracking store to read from: a local SQLite database must exist (MLflow would make an
    empty one and find nothing in it)."""
    if not isinstance(uri, str) or not uri:
        raise ConfigError(where, f"must be a tracking URI, got {uri!r}")
    if uri.startswith("sqlite:///"):
        database = Path(uri.removeprefix("sqlite:///")).expanduser()
        if not database.is_file():
            raise ConfigError(where, f"{database} does not exist: no evaluation has been logged "
                                     "there yet (python -m crossmath.run logs one)")
    return uri


def puzzle_generation(difficulty: Any, generator: Mapping[str, Any] | None, where: str) -> None:
    """Options of generated puzzles (``<where>.difficulty``, ``<where>.generator``)."""
    one_of(difficulty, f"{where}.difficulty", (*DIFFICULTIES, "mixed"))
    fields = dict(generator or {})
    known = {f.name for f in dataclasses.fields(GeneratorConfig)} - {"difficulty"}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ConfigError(f"{where}.generator", f"unknown field(s) {', '.join(unknown)}; "
                                                f"known: {', '.join(sorted(known))}")
    validated(lambda: GeneratorConfig(**fields), f"{where}.generator")


def backend_target(model: Mapping[str, Any], where: str = "model") -> None:
    """The backend class named by ``_target_`` exists and declares its contract
    (``crossmath.models.contract``), and the optional package it needs, if any, is installed.
    Its module is imported: backend modules are light (torch loads in the inference actor)."""
    try:
        spec = BackendSpec.of(model)
    except ValueError as error:
        raise ConfigError(f"{where}._target_", str(error)) from None
    if spec.contract.requires is not None:
        package, install = spec.contract.requires
        if importlib.util.find_spec(package) is None:
            raise ConfigError(f"{where}._target_", f"{spec.target} needs {package}, which is "
                                                   f"not installed here: {install}")


class ModelFiles(NamedTuple):
    """What a model config names besides its backend, read at the door: its prompt set (None:
    a model shown no prompt) and its adapter folder (None: no adapter)."""

    prompt_set: PromptSet | None
    adapter: Path | None


def model_options(model: Mapping[str, Any], where: str = "model") -> ModelFiles:
    """A model config's backend, prompt set and adapter, as far as they can be checked here;
    the prompt set and adapter folder, resolved."""
    backend_target(model, where)
    prompts = (resolved_prompt_set(model["prompt"], f"{where}.prompt")
               if model.get("prompt") is not None else None)
    adapter = (adapter_folder(str(model["adapter"]), f"{where}.adapter")
               if model.get("adapter") else None)
    return ModelFiles(prompts, adapter)


def validated(build: Callable[[], Built], where: str) -> Built:
    """``build()``: a library's own reading of the options under ``where``, whose ``ValueError``
    or ``TypeError`` becomes a ``ConfigError`` (its message names the field)."""
    try:
        return build()
    except (TypeError, ValueError) as error:
        raise ConfigError(where, str(error)) from None
