"""Dataset preparation behind the tools: LMDB writer, LR images, sub-images, metrics of two
folders, generated image pairs (tests, demos). Above data and metrics; nothing imports it but
the tools and tests."""
