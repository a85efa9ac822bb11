"""Kept for BasicSR-style imports (``basicsr_lite.data.imresize``): the code is in degrade/."""
from basicsr_lite.data.degrade.imresize import imresize, imresize_pt  # noqa: F401
