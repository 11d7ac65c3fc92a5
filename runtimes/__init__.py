"""runtimes: one backend per format behind one contract, and the matting predictor on top."""

from modnet_edge.runtimes.base import Backend, TensorInfo
from modnet_edge.runtimes.loader import detect_format, load, open_backend
from modnet_edge.runtimes.predictor import MattingPredictor

__all__ = ["Backend", "TensorInfo", "MattingPredictor", "detect_format", "load", "open_backend"]
