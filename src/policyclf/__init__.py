"""policyclf: code Chinese government policy texts against a seven-category codebook."""

from policyclf.errors import PolicyclfError
from policyclf.labels import CATEGORIES, SUBCODES

__version__ = "0.1.0"

__all__ = ["CATEGORIES", "SUBCODES", "PolicyclfError", "__version__"]
