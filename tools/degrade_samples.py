"""Same as ``python -m basicsr_lite.tools.degrade_samples`` and ``basicsr-degrade-samples``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.degrade_samples import main

if __name__ == '__main__':
    sys.exit(main())
