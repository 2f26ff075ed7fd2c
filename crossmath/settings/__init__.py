"""The door: a composed config checked and turned into settings once, before any work starts.

- ``checks``: checks of single options (a whole number, a style, an adapter folder, ...), each
  raising a ``ConfigError`` that names the option as the user writes it.
- ``run``: the main job's settings (``RunSettings.from_config``), ``conf/run.yaml`` checked.
- ``train``: the fine-tuning job's (``TrainJobSettings.from_config``, ``conf/train.yaml``):
  each section parsed into the object the job uses, the training set's as ``DatasetSettings``.
- ``generate``, ``lint``, ``score``, ``render``, ``serve``, ``report``: each of those commands
  has its frozen settings class (``GenerateSettings``, ``LintSettings``, ...) made by
  ``from_config`` at its door; the command's body reads only it.
- ``sections``: what every fine-tuning config section shares (unknown keys, counts below 1).

The modules import the library they resolve names into. The library imports ``sections`` (a
leaf), ``crossmath.pipeline.evaluation`` takes ``RunSettings`` (a composed config given to it by
a Python caller goes through the same door) and ``crossmath.finetuning.job`` takes
``TrainJobSettings``; the import graph stays free of cycles (``tests/test_import_graph.py``).
"""
