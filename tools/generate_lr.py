"""Same as ``python -m basicsr_lite.tools.generate_lr`` and ``basicsr-generate-lr``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.generate_lr import main

if __name__ == '__main__':
    sys.exit(main())
