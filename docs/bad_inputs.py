"""Every wrong input the commands are known to meet, run for real; docs/bad-inputs.md is what
this script writes.

    python docs/bad_inputs.py            # runs each case as the user would, rewrites the page

Each case is one command line with one mistake. Every one must stop the command at the door:
exit status 2, one line on stderr naming the option (or file) and what is allowed, nothing
started, nothing written. The page lists each case with the line it printed, so the page says
what the commands really do; ``tests/test_bad_inputs.py`` runs the same cases in-process (a few
seconds) and checks that each still ends that way and that the page is current.

Files and addresses a case needs are made in a scratch folder and shown as placeholders:
``<sample>`` (the official sample), ``<missing>``, ``<empty>`` (an empty jsonl), ``<png>``
(an image), ``<adapter>`` (an adapter folder whose JSON is broken), ``<holey>`` (a release
folder with one image deleted), ``<unwritable>``, ``<closed>`` (a local port nothing listens
on), ``<tmp>`` (the scratch folder).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO.parent / "shared" / "official-sample"
PAGE = REPO / "docs" / "bad-inputs.md"
USER_ERROR = 2


@dataclass(frozen=True)
class Case:
    mistake: str  # what the user got wrong, in words
    module: str  # run as python -m <module>
    args: tuple[str, ...]  # with <placeholders>
    names: str  # what the line must name

    @property
    def shown(self) -> str:
        return " ".join(["python -m", self.module, *self.args])


def _case(mistake: str, command: str, names: str) -> Case:
    module, *args = command.split()
    return Case(mistake, module, tuple(args), names)


CASES = (
    # the main job
    _case("unknown model config", "crossmath.run model=nope", "model=nope"),
    _case("typo in a key", "crossmath.run sample=1", "sample"),
    _case("typo in a nested key", "crossmath.run data.nn=3", "data.nn"),
    _case("typo in a config group", "crossmath.run modle=tiny-random", "modle"),
    _case("unknown task", "crossmath.run task=nope", "task=nope"),
    _case("unknown style", "crossmath.run styles=[fancy]", "styles[0]"),
    _case("a list given as a word", "crossmath.run modalities=text", "modalities"),
    _case("no puzzles", "crossmath.run data.n=0", "data.n"),
    _case("no samples", "crossmath.run samples=0", "samples"),
    _case("an override that does not parse", "crossmath.run data.n=[1", "data.n=[1"),
    _case("a flag Hydra does not know", "crossmath.run --bogus", "--bogus"),
    _case("a release that is not there", "crossmath.run data=official data.path=<missing>",
          "data.path"),
    _case("an empty jsonl", "crossmath.run data=official data.path=<empty>", "empty"),
    _case("an image given as the release", "crossmath.run data=official data.path=<png>",
          "not UTF-8"),
    _case("a release image deleted", "crossmath.run data=official data.path=<holey> "
          "styles=[original]", "1 release image(s) missing"),
    _case("unknown image source", "crossmath.run data=official data.path=<sample> "
          "data.images=mine", "data.images"),
    _case("a broken adapter", "crossmath.run model=tiny-random model.adapter=<adapter>",
          "model.adapter"),
    _case("a transfer task's data not there", "crossmath.run task=mmmu-val task.path=<missing>",
          "task.path"),
    _case("a results folder that cannot be made", "crossmath.run out_dir=<unwritable>",
          "out_dir"),
    _case("a Ray cluster that does not answer", "crossmath.run ray.address=<closed> "
          "ray.connect_timeout_s=1", "ray.address"),
    _case("no time to connect", "crossmath.run ray.connect_timeout_s=0",
          "ray.connect_timeout_s"),
    _case("a tracking server that does not answer", "crossmath.run samples=1 data.n=1 "
          "modalities=[text] mlflow.tracking_uri=http://<closed>", "MLflow tracking store"),
    # the other commands
    _case("no puzzles to generate", "crossmath.generate n=0", "n=0"),
    _case("unknown difficulty", "crossmath.generate difficulty=extreme", "difficulty"),
    _case("unknown style to generate", "crossmath.generate styles=[fancy]", "fancy"),
    _case("unknown style to render", "crossmath.render path=<sample>/Original/testset_hr.jsonl "
          "style=fancy out=<tmp>/rendered", "style=fancy"),
    _case("nothing to render", "crossmath.render path=<empty> out=<tmp>/rendered", "empty"),
    _case("no folder to render into", "crossmath.render path=<sample>/Original/testset_hr.jsonl "
          "out=<unwritable>", "out"),
    _case("nothing to lint", "crossmath.lint", "path"),
    _case("a file to lint that is not there", "crossmath.lint path=<missing>", "does not exist"),
    _case("an empty file to lint", "crossmath.lint path=<empty>", "empty"),
    _case("an image to lint", "crossmath.lint path=<png>", "not a JSONL file"),
    _case("release logs that are not there", "crossmath.score data=<missing> preds=<missing>",
          "No such file"),
    _case("empty release data", "crossmath.score data=<empty> preds=<empty>", "no records"),
    _case("unknown experiment", "crossmath.report mlflow.experiment=crossmth "
          "mlflow.tracking_uri=sqlite:///<mlflow>", "closest: crossmath"),
    _case("a tracking database that is not there", "crossmath.report "
          "mlflow.tracking_uri=sqlite:///<missing>", "mlflow.tracking_uri"),
    _case("unknown metric", "crossmath.report metric=accuracy", "metric"),
    _case("unknown training method", "crossmath.train method=bogus", "method=bogus"),
    _case("training an adapter's model", "crossmath.train model.adapter=<adapter>",
          "model.adapter"),
    _case("unknown style to train on", "crossmath.train dataset.styles=[nope]",
          "dataset.styles[0]"),
    _case("training on a cluster that does not answer", "crossmath.train ray.address=<closed> "
          "ray.connect_timeout_s=1", "ray.address"),
    _case("serving a broken adapter", "crossmath.serve model.adapter=<adapter>", "model.adapter"),
    _case("a port out of range", "crossmath.serve server.port=70000", "server.port"),
    _case("a key variable not set", "crossmath.serve server.api_key_env=CROSSMATH_NO_SUCH_KEY",
          "server.api_key_env"),
    _case("serving an unknown model", "crossmath.serve model=nope", "model=nope"),
    # the cluster jobs: checked here, before anything is submitted
    _case("a job for an unknown model", "jobs.evaluate model=nope", "model=nope"),
    _case("a job with a typo in a key", "jobs.evaluate sample=1", "sample"),
    _case("a job flag that does not exist", "jobs.evaluate --bogus", "--bogus"),
    _case("a dashboard that does not answer", "jobs.evaluate --address http://<closed> "
          "--connect-timeout-s 1 model=oracle", "--address"),
    _case("a sweep over an unknown model", "jobs.sweep --models oracle,nope", "model=nope"),
    _case("fine-tuning an unknown model", "jobs.finetune --model nope", "model=nope"),
    _case("a typo in the story's evaluations", "jobs.finetune_story --eval data.nn=1",
          "data.nn"),
)


@dataclass(frozen=True)
class Outcome:
    status: int
    stderr: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


@contextlib.contextmanager
def placeholders() -> Iterator[dict[str, str]]:
    """The files and addresses the cases name, made in a scratch folder removed after."""
    with tempfile.TemporaryDirectory(prefix="crossmath-bad-inputs-") as scratch:
        tmp = Path(scratch)
        (tmp / "empty.jsonl").write_text("", encoding="utf-8")
        image = next((SAMPLE / "Original").rglob("*.png"))
        shutil.copy(image, tmp / "image.png")
        adapter = tmp / "adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text('{"r": 8,}', encoding="utf-8")
        (adapter / "adapter_model.safetensors").write_bytes(b"\0")
        holey = tmp / "release"
        shutil.copytree(SAMPLE / "Original", holey / "Original")
        sorted((holey / "Original").rglob("*.png"))[0].unlink()
        database = tmp / "mlflow.db"
        _tracking_database(database)
        with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
            probe.bind(("127.0.0.1", 0))
            port = str(probe.getsockname()[1])
        yield {"<sample>": str(SAMPLE), "<missing>": str(tmp / "no-such-file.jsonl"),
               "<empty>": str(tmp / "empty.jsonl"), "<png>": str(tmp / "image.png"),
               "<adapter>": str(adapter), "<holey>": str(holey),
               "<unwritable>": "/proc/crossmath-results", "<closed>": f"127.0.0.1:{port}",
               "<closed port>": port,
               "<mlflow>": str(database), "<tmp>": str(tmp)}


def _tracking_database(path: Path) -> None:
    """An MLflow database holding the experiment ``crossmath`` (made quietly, by a child
    process: MLflow's import and its table setup are no business of the cases)."""
    subprocess.run([sys.executable, "-c", "import logging, sys, mlflow; "
                    "logging.disable(logging.INFO); "
                    "mlflow.MlflowClient(sys.argv[1]).create_experiment('crossmath')",
                    f"sqlite:///{path}"], check=True, capture_output=True, timeout=300)


def filled(case: Case, values: dict[str, str]) -> list[str]:
    return [re.sub("|".join(map(re.escape, values)), lambda m: values[m.group(0)], arg)
            for arg in case.args]


def masked(text: str, values: dict[str, str]) -> str:
    """``text`` with the scratch values put back as their placeholders (longest first)."""
    for name, value in sorted(values.items(), key=lambda item: -len(item[1])):
        text = text.replace(value, name)
    return text


def run_subprocess(case: Case, values: dict[str, str]) -> Outcome:
    """The case as the user meets it: ``python -m <module> <args>`` in the scratch folder."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HYDRA_FULL_ERROR": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("CROSSMATH_NO_SUCH_KEY", None)
    done = subprocess.run([sys.executable, "-m", case.module, *filled(case, values)],
                          cwd=values["<tmp>"], env=env, capture_output=True, text=True,
                          timeout=300)
    return Outcome(done.returncode, masked(done.stderr, values))


def run_in_process(case: Case, values: dict[str, str]) -> Outcome:
    """The same case in this process (for the tests: no interpreter start per case)."""
    import importlib

    from hydra.core.global_hydra import GlobalHydra

    module = importlib.import_module(case.module)
    arguments = filled(case, values)
    stderr = io.StringIO()
    saved = (sys.argv, os.getcwd(), os.environ.get("HYDRA_FULL_ERROR"))
    GlobalHydra.instance().clear()
    sys.argv, status = [case.module, *arguments], 0
    os.chdir(values["<tmp>"])
    os.environ["HYDRA_FULL_ERROR"] = "0"
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            if case.module.startswith("jobs."):
                status = module.job_entry(module.PROG, lambda: module.main(arguments))
            else:
                module.main()
    except SystemExit as exit_:
        status = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.argv = saved[0]
        os.chdir(saved[1])
        if saved[2] is None:
            os.environ.pop("HYDRA_FULL_ERROR", None)
        else:
            os.environ["HYDRA_FULL_ERROR"] = saved[2]
        GlobalHydra.instance().clear()
    return Outcome(status, masked(stderr.getvalue(), values))


def problems(case: Case, outcome: Outcome) -> list[str]:
    """What is wrong with how the command met the case (nothing, if it stopped as it must)."""
    found = []
    if outcome.status != USER_ERROR:
        found.append(f"exit status {outcome.status}, not {USER_ERROR}")
    if len(outcome.lines) != 1:
        found.append(f"{len(outcome.lines)} lines on stderr, not 1")
    elif case.names not in outcome.lines[0]:
        found.append(f"the line does not name {case.names!r}")
    return found


def page(outcomes: list[tuple[Case, Outcome]]) -> str:
    rows = [f"| {case.mistake} | `{case.shown}` | {outcome.status} | "
            f"`{_cell(outcome.lines[-1] if outcome.lines else '')}` |"
            for case, outcome in outcomes]
    return "\n".join([
        "# Wrong inputs, and what each command says", "",
        "Generated by `python docs/bad_inputs.py`, which runs every case below as written "
        "(placeholders are files it makes: see its docstring); `tests/test_bad_inputs.py` "
        "checks that each case still ends this way. Each one stops the command before it "
        "starts Ray or loads a model (and, but for the unreachable tracking server, which is "
        "found when the run opens its MLflow run, before it makes a results folder): exit "
        "status 2, and one line on stderr naming the option or file and what is allowed.", "",
        "| mistake | command | exit | stderr |", "|---|---|---:|---|", *rows, ""])


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'")


def main() -> int:
    outcomes = []
    with placeholders() as values:
        for case in CASES:
            outcome = run_subprocess(case, values)
            outcomes.append((case, outcome))
            wrong = problems(case, outcome)
            print(f"{'ok ' if not wrong else 'BAD'} {case.shown}" +
                  (f": {'; '.join(wrong)}\n{outcome.stderr}" if wrong else ""), flush=True)
    PAGE.write_text(page(outcomes), encoding="utf-8")
    print(f"wrote {PAGE}")
    return 1 if any(problems(case, outcome) for case, outcome in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
