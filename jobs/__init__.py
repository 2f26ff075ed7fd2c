"""Ray Job entry points: run crossmath commands on a Ray cluster (see docs/cluster.md).

``python -m jobs.evaluate``, ``python -m jobs.sweep`` and ``python -m jobs.finetune`` submit
``python -m crossmath.…`` commands (the last through ``jobs/train_then_eval.py``) as Ray Jobs,
with this repository as the job's working directory, and report where each MLflow run went;
``jobs.submission`` holds what they share. ``python -m jobs.local_cluster`` starts a small
multi-node cluster with an MLflow server on this machine to try them on.
``python -m jobs.finetune_story`` runs the paper's fine-tuning story (evaluate, fine-tune,
evaluate again on CrossMath with the probe and on the transfer tasks, compare) as one command.
"""
