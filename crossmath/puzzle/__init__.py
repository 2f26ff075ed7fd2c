"""Pure domain model of cross-math puzzles: grids, solving, generation, official records.

Imports neither Ray nor torch.
"""
