"""Exceptions raised for bad input: each message says what was wrong and what to do.

Every error minibert-ner raises on purpose derives from `MiniBertError`, so callers (and the
command line, which prints them as one line) can tell them apart from bugs. `exit_status` is the
command's exit status for the error: 2 for bad input (a usage error), 1 for a job that stopped
part-way for a reason outside its input (`JobError`).
"""


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


class InputError(MiniBertError, ValueError):
    """Input the NER pipeline or the command line cannot use: a bad option value, an unreadable
    file, text that is not valid UTF-8 (the message names the line)."""


class JobError(MiniBertError, RuntimeError):
    """A batch job that stopped part-way for a reason outside its input: an output file it cannot
    write (disk full, no permission), a Ray cluster it cannot reach or that failed. Finished
    files are kept; a rerun resumes."""

    exit_status = 1
