"""Same as ``python -m basicsr_lite.tools.create_lmdb`` and ``basicsr-create-lmdb``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.create_lmdb import main

if __name__ == '__main__':
    sys.exit(main())
