"""Same as ``python -m basicsr_lite.tools.model_card`` and ``basicsr-model-card``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.model_card import main

if __name__ == '__main__':
    sys.exit(main())
