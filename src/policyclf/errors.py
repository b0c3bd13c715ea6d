"""Errors that policyclf raises for bad input; the CLI prints them as one line and exits 1."""


class PolicyclfError(Exception):
    """Base class: a problem the user can fix (bad input, bad config, bad model directory)."""


class DataError(PolicyclfError):
    """Corpus or annotation records are invalid or do not match each other."""


class LabelError(DataError):
    """A category id that is not one of the codebook's seven."""


class DocumentError(PolicyclfError):
    """A document could not be read or segmented."""


class ModelError(PolicyclfError):
    """A model directory is missing, not a policyclf model, or incompatible."""


class ModelFileError(ModelError):
    """A file of a model directory is missing, damaged or incomplete, or its base model cannot be built."""


class ConfigError(PolicyclfError):
    """An experiment configuration is invalid."""
