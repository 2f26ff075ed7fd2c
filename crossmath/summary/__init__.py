"""Human-facing summaries of scorecards: console lines, markdown reports, plots, run comparisons."""
