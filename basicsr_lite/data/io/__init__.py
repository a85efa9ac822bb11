"""Reading image files and their pixel formats: storage backends, file lists, decoding into
tensors (8-bit colour or as stored), start-up size scans, per-image metadata."""
