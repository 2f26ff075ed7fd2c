"""MMMU validation (``task``): open answers read by MMMU's rule (``open``), and MMMU's own
script ported for the official scoring (``official``)."""
