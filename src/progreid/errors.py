"""User-facing errors: the CLI prints these without a traceback.

Every message should name the file or option at fault and say how to fix it.
"""


class ProgReIDError(Exception):
    """A mistake in the user's input (data, weights, options), not a bug."""


class DatasetError(ProgReIDError):
    """A dataset folder or manifest cannot be read as the requested layout."""


class CheckpointError(ProgReIDError):
    """A weights file cannot be loaded into the requested architecture."""
