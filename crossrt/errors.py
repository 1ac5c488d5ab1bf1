"""The exception tree. Every error a user can fix is a CrossrtError: one line, exit code 2.

A run that ends early but has finished work to keep raises :class:`Stopped` with that
partial result; the CLI saves it, says why, and exits 130 (interrupted) or 1 (failed).
"""

from __future__ import annotations

# The exit codes of every crossrt command.
EXIT_OK = 0  # done
EXIT_FAILED = 1  # ran, and something measured failed (a disagreeing runtime, a diverged loss, a failed row)
EXIT_USAGE = 2  # an error the user can fix: a flag, a file, a missing device; nothing was run
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; what finished was saved


class CrossrtError(Exception):
    """An error the user can fix: the CLI prints it as one line and exits with code 2."""


class ConfigError(CrossrtError):
    """A flag or setting with a bad value."""


class DataError(CrossrtError):
    """A dataset file or folder that cannot be used."""


class ModelError(CrossrtError):
    """A model or checkpoint file that cannot be used."""


class ProviderError(CrossrtError):
    """A requested device or execution provider that is not really in use; `cause` says why in
    a few words (`crossrt doctor` shows that)."""

    def __init__(self, message: str, cause: str = ""):
        super().__init__(message)
        self.cause = cause or message


class ResultError(CrossrtError):
    """A result JSON file that cannot be used."""


class FieldError(ValueError):
    """A field of a result file that is missing, of the wrong type or out of range (crossrt.schema
    raises it, naming the field); loading a file turns it into a ResultError naming the file."""


class WriteError(CrossrtError):
    """A file that could not be written (a full disk, a file-size limit, a path that is not a
    regular file); `path` names it, `reason` says why. The message says what was kept."""

    def __init__(self, message: str, path=None, reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM in the middle of one configuration, with what of it had finished
    (`made`: kept as the configuration's results, then the run stops)."""

    def __init__(self, made: list):
        super().__init__()
        self.made = made


class Busy(CrossrtError):
    """Another crossrt run holds the output folder."""


class Stopped(CrossrtError):
    """A run ended early; `result` holds what was finished and must still be saved.

    interrupted: Ctrl-C or SIGTERM (exit 130), else a failure such as a diverged loss (exit 1).
    resumable: `--resume` continues from the checkpoint on disk.
    """

    def __init__(self, message: str, result, *, interrupted: bool = True, resumable: bool = False):
        super().__init__(message)
        self.result = result
        self.interrupted = interrupted
        self.resumable = resumable
