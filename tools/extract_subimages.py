"""Same as ``python -m basicsr_lite.tools.extract_subimages`` and ``basicsr-extract-subimages``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.extract_subimages import main

if __name__ == '__main__':
    sys.exit(main())
