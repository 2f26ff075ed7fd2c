"""``python -m crossmath <command> [arguments]``: the ``crossmath`` door (``crossmath.cli``)."""

import sys

from crossmath.cli import main

if __name__ == "__main__":
    sys.exit(main())
