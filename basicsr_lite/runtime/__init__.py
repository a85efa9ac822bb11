"""What models and data use at run time: checkpoint files and weight loading, distributed
helpers, EMA, optimizers and schedulers, the optimizer-step helper, tiled inference.
Imports nothing above it (models, data, options, engine)."""
