"""runtimes: one backend per format behind one contract, and the matting predictor on top."""

from .base import Backend, TensorInfo
from .loader import detect_format, load, open_backend
from .predictor import MattingPredictor

__all__ = ["Backend", "TensorInfo", "MattingPredictor", "detect_format", "load", "open_backend"]
