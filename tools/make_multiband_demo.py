"""Same as ``python -m basicsr_lite.tools.make_multiband_demo`` and ``basicsr-make-multiband-demo``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.make_multiband_demo import main

if __name__ == '__main__':
    sys.exit(main())
