"""The training / testing loop's machinery: run folders and resume lookup (experiment),
checkpoints of a run (resume), validation, stop signals, logging, the command-line wrapper.
The top layer: it uses models, data, options and runtime; nothing below imports it."""
