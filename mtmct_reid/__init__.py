"""mtmct-reid: multi-camera person re-identification with spatial-temporal fusion (st-ReID)."""

from mtmct_reid.errors import ReIDError

__all__ = ["ReIDError", "__version__"]
__version__ = "0.1.0"
