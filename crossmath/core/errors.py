"""The one type of a user's error, and the error of an option at a command's door.

Every error that means "your input cannot work" (an option, a file, a config name) is a
``UserError``: its message names what and where, so a command reports it as one line on
stderr with exit status 2, no traceback (``crossmath.runtime.errors``). Each layer raises its
own subclass (a malformed grid, an unknown style, a broken prompt set, a release that cannot
be found...), keeping the builtin type it always had (``ValueError``, ``RuntimeError``), so
that the entry point catches one type and a caller may still catch the builtin one.
"""

from __future__ import annotations


class UserError(Exception):
    """An input the user gave that cannot work; the message says what and where."""


class ConfigError(UserError, ValueError):
    """An option or input the user gave that cannot work, found at a command's door.

    ``where`` names it as the user wrote it (``data.path``, ``model.adapter``,
    ``styles[1]``, or a file); ``problem`` says what is wrong and, where it helps, what
    would do instead. A problem that already starts with the option's name (a library's own
    message, "train.epochs must be ...") is shown without repeating it.
    """

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(where, problem)  # both in args, so the error pickles (Ray workers)
        self.where = where
        self.problem = problem

    def __str__(self) -> str:
        return self.problem if self.problem.startswith(self.where) else f"{self.where}: {self.problem}"
