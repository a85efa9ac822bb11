"""Memory sizes as people write them ('24GB') and as they read them ('1.50 GiB')."""
from __future__ import annotations

import re

from basicsr_lite.errors import UserError

MIB, GIB = 2**20, 2**30


def parse_bytes(text: str | int | float, where: str = '--memory') -> int:
    """'24GB' / '24GiB' / '512MB' / '1.5 GB' / a number of bytes. GB means GiB (2^30): GPU
    memory is sold in binary units (a '24 GB' card has 24 GiB)."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text)
    match = re.fullmatch(r'\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?B)?\s*', str(text), re.IGNORECASE)
    if not match:
        raise UserError(f"{where}: expected a size such as 24GB, 11.5GiB or 800MB; got {text!r}.")
    unit = {'': 1, 'K': 2**10, 'M': MIB, 'G': GIB, 'T': 2**40}[match[2].upper()]
    return int(float(match[1]) * unit)


def format_bytes(n: float) -> str:
    return f'{n / GIB:.2f} GiB' if n >= GIB else f'{n / MIB:.0f} MiB'
