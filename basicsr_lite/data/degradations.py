"""Kept for BasicSR-style imports (``basicsr_lite.data.degradations``): the code is in degrade/."""
from basicsr_lite.data.degrade.degradations import (add_gaussian_noise, degrade,  # noqa: F401
                                                    gaussian_blur, jpeg_compress)
