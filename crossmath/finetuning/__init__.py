"""Fine-tuning: a CrossMath training set and LoRA SFT on Ray Train (see docs/training.md).

Submodules: ``targets`` (what the model learns to reply), ``dataset`` (the training set on
disk), ``collate`` (examples to model inputs), ``modeling`` (model, LoRA), ``loop`` (the step,
loss, validation and checkpoints every path shares), ``local`` and ``ray_trainer`` (running it
in one process or on Ray Train). Importing this package imports neither torch nor Ray.
"""
