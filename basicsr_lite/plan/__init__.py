"""The memory planner (``train.py --plan``): how much memory one training step of an option
file needs at a batch and patch size, and the largest setting that fits a budget."""
