"""Exceptions raised for bad input: each message says what was wrong and what to do.

The convention, followed by every module:
1. Validate once, at the public edge: the Python API (what a module's `__all__` exports), the
   command line, the records of a batch job, the server's requests (serve/requests.py answers
   them with an HTTP status). Raise one of the errors below, with a message that says what was
   wrong and what to do.
2. Inside, trust what the edge checked: no second round of the same checks. A condition only a
   bug can break is an assert, or a plain ValueError / RuntimeError: a bug, reported as one.
3. A batch record that cannot be labelled is data, not an exception: it is written with its
   reason (batch/records.py). Ray carries failures as data too: a worker's error comes back in
   a column of its result, never as remote traceback text to be parsed.
4. The command line prints a `MiniBertError` as one line and exits with its `exit_status` (2 for
   bad input or options, 1 for a job that stopped part-way for a reason outside its input:
   `JobError`); anything else is a bug and keeps its traceback.
5. A result that is computed but likely not what the user meant (an evaluation whose model and
   data share no entity type) comes with a `MiniBertWarning`; the command line shows it as one
   line, "minibert-ner: warning: ...", and silences other libraries' warnings.
"""

__all__ = [
    "BatchError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "InputError",
    "InterventionError",
    "JobError",
    "MiniBertError",
    "MiniBertWarning",
    "MissingExtraError",
    "ModelNotFoundError",
    "TokenizerError",
]


class MiniBertError(Exception):
    """Base class of the errors minibert-ner raises for bad input or missing files."""

    exit_status = 2


class ConfigError(MiniBertError, ValueError):
    """A `config.json` that is missing, unreadable or describes an unsupported model."""


class CheckpointError(MiniBertError, ValueError):
    """Weights that are missing, corrupt, or do not fit the model the config describes."""


class ModelNotFoundError(MiniBertError, OSError):
    """A model name that is neither a local folder nor reachable on (or cached from) the hub."""


class TokenizerError(MiniBertError, ValueError):
    """Tokenizer files that are missing or unreadable."""


class DataError(MiniBertError, ValueError):
    """A data file (CoNLL) that is missing, unreadable or malformed; the message names file:line."""


class InterventionError(MiniBertError, ValueError):
    """An intervention on the model (mask, prune, skip, ...) naming a layer or head it lacks."""


class MissingExtraError(MiniBertError, ImportError):
    """An optional feature whose extra is not installed (figures need `minibert-ner[plot]`)."""


class BatchError(MiniBertError, ValueError):
    """A batch job that cannot run as asked: no input files, an input without the text column,
    two inputs writing the same output, or an output folder written with other options."""


class InputError(MiniBertError, ValueError, TypeError):
    """Input the NER pipeline or the command line cannot use: a bad option value, an argument of
    the wrong type, an unreadable file, text that is not valid UTF-8 (the message names the
    line). Also a ValueError and a TypeError, as Python's own checks would raise."""


class JobError(MiniBertError, RuntimeError):
    """A batch job that stopped part-way for a reason outside its input: an output file it cannot
    write (disk full, no permission), a Ray cluster it cannot reach or that failed. Finished
    files are kept; a rerun resumes."""

    exit_status = 1


class MiniBertWarning(UserWarning):
    """A result that is computed but probably not what was meant; the message says why."""
