"""Same as ``python -m basicsr_lite.tools.calculate_metrics`` and ``basicsr-calculate-metrics``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.calculate_metrics import main

if __name__ == '__main__':
    sys.exit(main())
