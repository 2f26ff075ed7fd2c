"""Third-party text read at run time from a pinned commit, never copied into this project.

Some prompts belong to other projects (the CrossMath release's instructions, MathVerse's
judge prompts): their text stays theirs. We read it where it is published, a Python file at a
pinned commit of its repository: downloaded once into a cache folder named by the commit,
or read from a local copy the user gives (a machine without internet). The file is parsed
with ``ast`` and never executed: only module-level assignments of string constants are read.
"""

from __future__ import annotations

import ast
import os
import tempfile
import urllib.request
from pathlib import Path
from typing import Sequence

from crossmath.models.prompt_parts import PromptTemplateError

FETCH_TIMEOUT_S = 30


def string_constants(path: str | Path, names: Sequence[str], what: str) -> dict[str, str]:
    """The module-level string constants ``names`` of the Python file ``path``, parsed
    without running it; ``PromptTemplateError`` naming the file when it cannot be read or
    lacks one of them (``what`` says which file was expected)."""
    path = Path(path)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError) as error:
        raise PromptTemplateError(f"{path}: cannot read {what}: {error}") from None
    constants: dict[str, str] = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            constants[node.targets[0].id] = node.value.value
    missing = [name for name in names if name not in constants]
    if missing:
        raise PromptTemplateError(f"{path}: no string constant(s) {', '.join(missing)} "
                                  f"(expected {what})")
    return {name: constants[name] for name in names}


def fetch_pinned_file(url: str, target: Path, offline_hint: str) -> Path:
    """``target``, downloaded once from ``url`` (a raw file at a pinned commit); a failed
    download is a ``PromptTemplateError`` that ends with ``offline_hint``."""
    if target.is_file():
        return target
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:
            content = response.read()
    except OSError as error:  # URLError, timeouts, refused connections
        raise PromptTemplateError(f"could not fetch {url} ({error}); offline? "
                                  f"{offline_hint}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False, suffix=".tmp") as stream:
        stream.write(content)
    os.replace(stream.name, target)
    return target
