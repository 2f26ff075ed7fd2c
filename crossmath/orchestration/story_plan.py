"""The fine-tuning story as data: which commands run, in which order, with which overrides.

A story evaluates the base model, fine-tunes it with LoRA SFT, evaluates the SFT adapter, and
with GRPO fine-tunes again from that adapter and evaluates the GRPO one: base -> SFT -> GRPO,
each stage evaluated alike (CrossMath, with the perception probe, and each transfer task).
``plan_story`` turns what was asked (a ``Story``) into ``Step``s, each a command's module
(``crossmath.run``, ``crossmath.train``) and its Hydra overrides. Nothing here runs anything:
``local_steps`` runs the steps here, one process each (``crossmath story``), and ``ray_jobs``
submits them to a cluster as one Ray Job (``crossmath submit finetune``).

Every step writes under the story's root, where its ``Layout`` says; the root may be a path
the commands resolve themselves (``${oc.env:CROSSMATH_STORAGE}/tuned/M`` on a cluster).
"""

from __future__ import annotations

from dataclasses import dataclass

from crossmath.orchestration.overrides import with_defaults

EVALUATE = "crossmath.run"
TRAIN = "crossmath.train"
CROSSMATH = "crossmath"  # the task of the evaluations that are not transfer tasks
PROBE_MODALITIES = "[text,image,hybrid,transcribe]"
ADAPTER_FOLDER = "adapter"  # where crossmath.train leaves the adapter, under its out_dir
BASE = "base"
GRPO = "grpo"


@dataclass(frozen=True)
class Step:
    """One command of a story, ``python -m <module> <overrides>``; an evaluation names the
    stage whose model it evaluates and its task."""

    name: str
    module: str
    overrides: tuple[str, ...]
    stage: str | None = None
    task: str | None = None

    @property
    def config_name(self) -> str:
        """The command's config (``run`` or ``train``), which its overrides compose with."""
        return "run" if self.module == EVALUATE else "train"


@dataclass(frozen=True)
class Layout:
    """Where a story's steps write under its root, and what its SFT stage is called."""

    sft_stage: str    # the SFT stage's name: its evaluations' folder and the tuned model's suffix
    sft_folder: str   # the SFT run's out_dir
    evaluations: str  # each stage's runs_dir (one folder per evaluation inside), with {stage}


# crossmath story: OUT/sft, OUT/grpo, OUT/eval/<stage>, models M-sft and M-grpo
STORY_LAYOUT = Layout(sft_stage="sft", sft_folder="sft", evaluations="eval/{stage}")
# train, then evaluate (jobs/train_then_eval.py, crossmath submit finetune): OUT/train,
# OUT/grpo, OUT/eval-<stage>, models M-lora and M-grpo
TUNED_LAYOUT = Layout(sft_stage="lora", sft_folder="train", evaluations="eval-{stage}")


@dataclass(frozen=True)
class Story:
    """What a story runs: the model, where it writes, what each stage is evaluated on, and the
    overrides of each kind of step."""

    model: str
    root: str
    evaluate_base: bool = True
    probe: bool = True                  # CrossMath with the perception probe
    tasks: tuple[str, ...] = ()         # transfer tasks, each TASK or TASK=PATH
    train: tuple[str, ...] = ()         # the SFT step's overrides
    grpo: tuple[str, ...] | None = None  # the GRPO step's overrides; None: no GRPO stage
    evaluate: tuple[str, ...] = ()      # every evaluation's overrides
    layout: Layout = STORY_LAYOUT


def plan_story(story: Story) -> list[Step]:
    """The steps of ``story``, in order: base evaluations (if asked), SFT, its evaluations,
    then (with ``grpo``) GRPO from the SFT adapter and its evaluations."""
    layout = story.layout
    sft_out = under(story.root, layout.sft_folder)
    steps = evaluations(story, BASE, None) if story.evaluate_base else []
    steps.append(Step("fine-tune (SFT)", TRAIN,
                      (f"model={story.model}", f"out_dir={sft_out}", *story.train)))
    steps += evaluations(story, layout.sft_stage, under(sft_out, ADAPTER_FOLDER))
    if story.grpo is not None:
        grpo_out = under(story.root, GRPO)
        steps.append(Step("fine-tune (GRPO)", TRAIN, (
            f"model={story.model}", "method=grpo",
            f"init_adapter={under(sft_out, ADAPTER_FOLDER)}", f"out_dir={grpo_out}",
            *story.grpo)))
        steps += evaluations(story, GRPO, under(grpo_out, ADAPTER_FOLDER))
    return steps


def evaluations(story: Story, stage: str, adapter: str | None) -> list[Step]:
    """CrossMath and each transfer task, on the model of ``stage`` (``adapter`` None: base),
    each in its own folder under the stage's ``runs_dir``."""
    tuned = [] if adapter is None else [f"model.adapter={adapter}",
                                        f"model.name={story.model}-{stage}"]
    runs_dir = under(story.root, story.layout.evaluations.format(stage=stage))
    common = [f"model={story.model}", *tuned, f"runs_dir={runs_dir}"]
    kinds = [(CROSSMATH, {"modalities": PROBE_MODALITIES} if story.probe else {})]
    for spec in story.tasks:
        task, _, path = spec.partition("=")
        kinds.append((task, {"task": task, **({"task.path": path} if path else {})}))
    return [Step(f"evaluate {stage} on {task}", EVALUATE,
                 tuple(with_defaults(defaults, [*common, *story.evaluate])), stage=stage, task=task)
            for task, defaults in kinds]


def under(root: str, *parts: str) -> str:
    """``root/part/...``: a plain join, so that a root the commands resolve stays as written."""
    return "/".join([root.rstrip("/"), *parts])
