"""Commands chained and sent elsewhere: the fine-tuning story's plan (base -> SFT -> GRPO ->
evaluations, as data), running planned steps as local processes, reading the story's results
back, and submitting commands to a Ray cluster as Ray Jobs.

The commands ``crossmath story`` and ``crossmath submit`` (and the ``jobs/`` entry points) are
thin doors onto these modules.
"""
