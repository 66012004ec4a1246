"""The root of tidegate's exception tree, and errors that point at a place in a file.

    TidegateError                 anything tidegate reports to a user
     └── LocatedError             "FILE:LINE[:COL]: message" — rendered once, at the CLI/API edge
          ├── PolicyError         a policy pack or rollout spec is wrong
          └── DataError           a replay data file (CSV / JSON Lines) is wrong

Adapters add their own branches (signal and actuator errors) under TidegateError.
"""

from __future__ import annotations


class TidegateError(Exception):
    """Base of every error tidegate shows to a user instead of a traceback."""


class LocatedError(TidegateError):
    """An error with the file and line (and column, when known) it is about."""

    def __init__(self, file: str, line: int | None, message: str, col: int | None = None):
        self.file = file
        self.line = line
        self.col = col
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        return f"{where}: {self.message}"


class PolicyError(LocatedError):
    """A policy pack (or a file in the same YAML dialect) is invalid."""


class DataError(LocatedError):
    """A data file given to a backtest or replay is invalid."""
