"""MathVerse testmini, Vision Only (``task``), and its official two-stage judge: the prompts
(``judge``) and the rounds a judge model answers (``rounds``)."""
