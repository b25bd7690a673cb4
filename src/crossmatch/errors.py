"""One exception class per failure mode; the CLI turns them into messages and exit codes.

Findings (hits) are a normal result and exit 0.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    USAGE = 2  # click's own code for bad options
    SPEC_INVALID = 3  # a rule or source file failed validation
    INPUT_PROBLEMS = 4  # the run finished but some files/rows were quarantined or failed
    WAREHOUSE = 5  # the warehouse cannot be opened or is from an incompatible version
    RUN_FAILED = 6  # the run could not complete


class CrossmatchError(Exception):
    """Base class; ``str(exc)`` is the user-facing message, including the fix where known."""

    exit_code: ExitCode = ExitCode.RUN_FAILED


class SpecError(CrossmatchError):
    """One or more problems in rule/source spec files; ``problems`` lists them all."""

    exit_code = ExitCode.SPEC_INVALID

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__(
            f"{len(self.problems)} problem(s) in spec files:\n  " + "\n  ".join(self.problems)
        )


class InputFileError(CrossmatchError):
    """A raw input file cannot be read at all (names the file and the fix)."""

    exit_code = ExitCode.INPUT_PROBLEMS


class WarehouseError(CrossmatchError):
    exit_code = ExitCode.WAREHOUSE
