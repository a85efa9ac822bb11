"""Same as ``python -m basicsr_lite.tools.interpolate`` and ``basicsr-interpolate``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.interpolate import main

if __name__ == '__main__':
    sys.exit(main())
