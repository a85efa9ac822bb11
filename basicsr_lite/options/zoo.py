"""The option files shipped in the repository's ``options/`` folder, by the network they train."""
from __future__ import annotations

from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]


def reference_option_file(arch: str, root: Path = REPO_ROOT) -> Path | None:
    """The shipped option file that configures ``arch`` as network_g: a training file before a
    test file (the released configuration), an x4 file when there is one, demos last."""
    found = []
    for path in sorted((root / 'options').rglob('*.yml')):
        raw = yaml.safe_load(path.read_text()) or {}
        if (raw.get('network_g') or {}).get('type') == arch:
            found.append(path)
    found.sort(key=lambda p: ('demo' in p.name, 'options/test' in str(p), 'x4' not in p.name,
                              p.name))
    return found[0] if found else None
