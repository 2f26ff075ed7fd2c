"""How commands meet the machine and the user: the entry every command shares (``entry``:
Hydra, failures, stops), checking options before work starts (``checks``), reporting failures
(``errors``), stopping cleanly on a signal (``stops``), reaching Ray (``ray_cluster``) and
naming the code a result came from (``provenance``)."""
