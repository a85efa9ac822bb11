"""Same as ``python -m basicsr_lite.tools.export_onnx`` and ``basicsr-export-onnx``
(the code is in the package, which must be installed: ``pip install -e .``)."""
import sys

from basicsr_lite.tools.export_onnx import main

if __name__ == '__main__':
    sys.exit(main())
