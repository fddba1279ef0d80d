"""Exceptions raised for bad input: each message says what was wrong and what to do.

Every error minibert-ner raises on purpose derives from `MiniBertError`, so callers (and the
command line, which prints them as one line) can tell them apart from bugs.
"""


class MiniBertError(Exception):
    """Base class of the errors minibert-ner raises for bad input or missing files."""


class ConfigError(MiniBertError, ValueError):
    """A `config.json` that is missing, unreadable or describes an unsupported model."""


class CheckpointError(MiniBertError, ValueError):
    """Weights that are missing, corrupt, or do not fit the model the config describes."""


class ModelNotFoundError(MiniBertError, OSError):
    """A model name that is neither a local folder nor reachable on (or cached from) the hub."""


class TokenizerError(MiniBertError, ValueError):
    """Tokenizer files that are missing or unreadable."""
