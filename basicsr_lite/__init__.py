"""basicsr_lite: a small, strict, resumable image-restoration training framework."""

__version__ = '0.1.0'
