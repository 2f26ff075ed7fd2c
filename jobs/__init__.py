"""Ray Job entry points, kept as ``python -m jobs.<name>``: each is a ``crossmath`` command.

``python -m jobs.evaluate``, ``jobs.sweep`` and ``jobs.finetune`` are ``crossmath submit
evaluate|sweep|finetune``; ``python -m jobs.finetune_story`` is ``crossmath story``
(``crossmath/submit.py``, ``crossmath/story.py``, ``crossmath/orchestration/``).
``python jobs/train_then_eval.py`` trains then evaluates here, the steps the cluster's
fine-tuning job runs. ``python -m jobs.local_cluster`` starts a small multi-node cluster with
an MLflow server on this machine to try them on.
"""
