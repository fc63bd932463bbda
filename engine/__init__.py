from engine._core import build_info
