"""CrossMath's own puzzles as a task: where they come from (``sources``), the requests of each
modality, style and sample (``requests``) with their identity (``identity``), the questions of
an evaluation with the perception probe's second round and their scores (``questions``), and
the predictions as rows (``prediction_table``)."""
