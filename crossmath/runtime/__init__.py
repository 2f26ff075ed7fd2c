"""How commands meet the machine: connecting to Ray (a local one or a cluster)."""
