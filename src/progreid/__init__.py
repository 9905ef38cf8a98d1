"""progreid: adapt a person re-identification model to an unlabeled camera network."""

from progreid.errors import ProgReIDError

__version__ = "0.1.0"
__all__ = ["ProgReIDError", "__version__"]
