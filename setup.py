from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def read_version() -> str:
    for line in (ROOT / 'basicsr_lite' / '__init__.py').read_text().splitlines():
        if line.startswith('__version__'):
            return line.split('=')[1].strip().strip("'\"")
    raise RuntimeError('__version__ not found')


setup(
    name='basicsr_lite',
    version=read_version(),
    description='A small, strict, resumable BasicSR-style image restoration training framework',
    long_description=(ROOT / 'README.md').read_text(encoding='utf-8'),
    long_description_content_type='text/markdown',
    packages=find_packages(include=['basicsr_lite', 'basicsr_lite.*']),
    python_requires='>=3.10',
    install_requires=[
        'torch>=2.1',
        'numpy',
        'opencv-python-headless',
        'pyyaml',
        'lmdb',
        'tensorboard',
        'addict',
        'scipy',
        'tqdm',
        'tomli; python_version < "3.11"',
    ],
    extras_require={
        'vision': ['torchvision'],
        'safetensors': ['safetensors'],  # .safetensors weights, tools/convert_weights.py
        'onnx': ['onnx', 'onnxruntime'],  # tools/export_onnx.py and its check
        'wandb': ['wandb'],  # logger.wandb
        'aim': ['aim'],  # logger.aim
        'dev': ['pytest', 'safetensors', 'onnx', 'onnxruntime', 'wandb', 'import-linter>=2.17'],
        'demo-data': ['scikit-image'],  # only for tools/make_demo_data.py
    },
    entry_points={
        'console_scripts': [
            'basicsr-train=basicsr_lite.train:main',
            'basicsr-test=basicsr_lite.test:main',
        ],
    },
)
