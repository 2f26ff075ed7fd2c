#!/usr/bin/env bash
# Builds .whl/device-site.tar.xz: the Python packages the lent GPU machine lacks for the main
# job and the training bench (Ray Data and Train, Hydra, MLflow's client with its SQLite store),
# for its Python 3.12 on x86-64, in the versions of constraints.txt. Run it here once, where
# pip's index is reachable, before a session with a GPU; bench/device_checks.sh unpacks it there
# (carry .whl). Packages the GPU machine already has (torch, numpy, pandas, pyarrow, ...) are
# left out, so that its own builds are the ones imported.
set -euo pipefail
cd "$(dirname "$0")/.."

site=$(mktemp -d)
trap 'rm -rf "$site"' EXIT
platform=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
          --platform manylinux2014_x86_64)

# Hydra's parser runtime ships only as a source archive (pure Python): installed as is.
python3 -m pip install -q --no-deps --target "$site" -c constraints.txt \
    hydra-core omegaconf antlr4-python3-runtime
# The rest with their dependencies, resolved for the GPU machine's Python.
python3 -m pip install -q --target "$site" "${platform[@]}" -c constraints.txt \
    'ray[data,train]' mlflow-skinny sqlalchemy alembic

# What the GPU machine already has (docs/performance.md: its image's package list) stays its own.
python3 - "$site" <<'PY'
import re, shutil, sys
from pathlib import Path

site = Path(sys.argv[1])
present = {"torch", "numpy", "pandas", "pyarrow", "pillow", "transformers", "tokenizers",
           "safetensors", "huggingface-hub", "peft", "accelerate", "fsspec", "filelock",
           "packaging", "pyyaml", "requests", "urllib3", "idna", "certifi", "charset-normalizer",
           "typing-extensions", "jinja2", "markupsafe", "protobuf", "click", "msgpack", "aiohttp",
           "aiosignal", "frozenlist", "multidict", "yarl", "attrs", "anyio", "h11", "httpx",
           "httpcore", "sniffio", "grpcio", "psutil", "tqdm", "regex", "cloudpickle", "six",
           "python-dateutil", "pytz", "tzdata", "sympy", "mpmath", "networkx", "triton",
           "setuptools", "zipp", "rich", "pygments", "markdown-it-py", "mdurl", "scipy"}
for info in site.glob("*.dist-info"):
    name = re.sub(r"[-_.]+", "-", info.name.removesuffix(".dist-info").rsplit("-", 1)[0]).lower()
    if name in present:
        for line in (info / "RECORD").read_text().splitlines():
            path = site / line.split(",")[0]
            if path.is_file():
                path.unlink()
        shutil.rmtree(info, ignore_errors=True)
for folder in sorted(site.rglob("*"), reverse=True):  # folders emptied above
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
PY

mkdir -p .whl
tar -C "$site" -cJf .whl/device-site.tar.xz .
du -h .whl/device-site.tar.xz
