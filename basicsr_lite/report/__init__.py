"""Reports of finished runs: their curves and an HTML page (``tools/plot_run.py``)."""
