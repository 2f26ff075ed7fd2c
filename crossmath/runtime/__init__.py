"""How commands meet the machine and the user: connecting to Ray (``ray_cluster``), checking
options before work starts (``checks``), reporting failures (``errors``)."""
