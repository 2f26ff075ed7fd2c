"""crossmath: the modality gap of vision-language models on cross-math puzzles."""

__version__ = "0.1.0"
