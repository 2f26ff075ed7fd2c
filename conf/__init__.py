"""crossmath's Hydra configs, installed as the package ``crossmath.conf`` (see setup.py).

Commands read them with ``config_path="pkg://crossmath.conf"``; styles and the release's
layouts are read through this package too, so a regular (non-editable) install works from
any folder.
"""
