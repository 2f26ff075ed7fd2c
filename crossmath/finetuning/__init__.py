"""Fine-tuning: a CrossMath training set, LoRA SFT and GRPO on Ray Train (see docs/training.md).

Submodules: ``targets`` (what the model learns to reply), ``dataset`` (the training set on
disk), ``collate`` (examples to model inputs), ``modeling`` (model, LoRA), ``loop`` (the SFT
worker loop) with the pieces every method shares (``train_settings``, ``schedule``,
``worker_protocol``, ``worker_model``, ``optimization``, ``checkpoints``,
``training_state``, ``reporting``) and SFT's own step and batches (``sft_step``, ``batches``), ``grpo`` (the GRPO worker
loop), ``rollouts`` (sampling completions), ``rewards`` (scoring them), ``objective`` (GRPO's
advantages and loss), ``local`` and ``ray_trainer`` (running a job in one process or on Ray
Train), ``job`` (the command's job). Importing this package imports neither torch nor Ray.
"""
