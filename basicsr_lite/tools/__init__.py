"""The command-line tools, one module each with a ``main(argv=None) -> int``.

Each runs three ways with the same arguments: ``basicsr-<name>`` (a console script, dashes for
underscores), ``python -m basicsr_lite.tools.<name>``, and ``python tools/<name>.py`` from the
repository root (a thin shim). Nothing is imported here, so that ``python -m`` runs a module once.
"""
