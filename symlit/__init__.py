"""symlit: train transformers on symbolic mathematics and theoretical physics."""

from symlit.core import config as _config  # noqa: F401  (registers the Hydra resolvers)

__version__ = "0.1.0"
