"""What the transfer tasks share: items and their loading from published parquet files
(``item``, ``published``, ``task``), reading replies (``final_answer``, ``choices``,
``freeform`` with ``answer_units`` and ``latex_numbers``), the two scorings and their tallies
(``scorings``, ``tallies``), and their questions in the main job (``questions``)."""
