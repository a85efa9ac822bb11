"""Same as ``python -m basicsr_lite.tools.check_interop`` and ``basicsr-check-interop``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.check_interop import main

if __name__ == '__main__':
    sys.exit(main())
