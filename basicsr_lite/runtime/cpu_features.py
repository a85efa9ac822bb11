"""What this CPU offers for mixed precision and NHWC: /proc/cpuinfo's flags, torch's dispatch
capability and a oneDNN ISA cap (the capability rule of runtime/speed_probe.py; benchmarks)."""
from __future__ import annotations

import dataclasses
import os
import platform
from pathlib import Path

import torch

# cpuinfo flags that mean native low-precision arithmetic (x86; then ARM's Features names)
NATIVE_FLAGS = {'bf16': ('avx512_bf16', 'amx_bf16', 'bf16'),
                'fp16': ('avx512fp16', 'amx_fp16', 'asimdhp')}
RELEVANT_FLAGS = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx512_bf16', 'avx512fp16',
                  'amx_tile', 'amx_bf16', 'amx_fp16', 'asimdhp', 'bf16', 'sve')
# oneDNN ISA caps below bf16 / fp16 arithmetic (a cap emulates an older CPU)
ONEDNN_CAPS_WITHOUT_LOW_PRECISION = ('SSE41', 'AVX', 'AVX2', 'AVX2_VNNI', 'AVX2_VNNI_2',
                                     'AVX512_CORE', 'AVX512_CORE_VNNI')


@dataclasses.dataclass(frozen=True)
class CpuInfo:
    """What this CPU offers for mixed precision."""
    model: str
    torch_capability: str  # 'AVX512', 'AVX2', 'DEFAULT', ... (torch's dispatch level)
    flags: frozenset[str]  # the RELEVANT_FLAGS present (empty when /proc/cpuinfo is missing)
    known: bool  # False: no flag list to go by (not Linux)
    onednn_cap: str | None = None  # ONEDNN_MAX_CPU_ISA: oneDNN (the CPU convolutions) held lower

    def native(self, amp: str) -> bool | None:
        """Whether autocast to ``amp`` runs on native instructions; None: unknown."""
        if self.onednn_cap in ONEDNN_CAPS_WITHOUT_LOW_PRECISION:
            return False
        if not self.known:
            return None
        return any(flag in self.flags for flag in NATIVE_FLAGS[amp])

    def describe(self) -> str:
        flags = ' '.join(f for f in RELEVANT_FLAGS if f in self.flags) or 'none of interest'
        cap = f'; ONEDNN_MAX_CPU_ISA={self.onednn_cap}' if self.onednn_cap else ''
        return f'{self.model}; torch CPU capability {self.torch_capability}; flags: {flags}{cap}'


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str], bool]:
    """(model name, relevant flags, whether a flag list was found) of a /proc/cpuinfo text."""
    model, flags, known = '', set(), False
    for line in text.splitlines():
        key, _, value = line.partition(':')
        key = key.strip().lower()
        if key in ('model name', 'hardware', 'cpu model') and not model:
            model = value.strip()
        elif key in ('flags', 'features'):
            known = True
            flags.update(value.split())
    return model, frozenset(flags & set(RELEVANT_FLAGS)), known


def cpu_info(cpuinfo: Path = Path('/proc/cpuinfo')) -> CpuInfo:
    """This machine's CpuInfo: the flags of ``cpuinfo``, torch's capability, the oneDNN cap."""
    try:
        model, flags, known = parse_cpuinfo(cpuinfo.read_text(errors='replace'))
    except OSError:
        model, flags, known = '', frozenset(), False
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        capability = 'unknown'
    cap = os.environ.get('ONEDNN_MAX_CPU_ISA') or os.environ.get('DNNL_MAX_CPU_ISA')
    return CpuInfo(model or platform.processor() or platform.machine(), capability, flags, known,
                   cap.upper() if cap else None)


def cpu_summary() -> str:
    """One line naming the CPU and its flags that matter for training speed (benchmarks)."""
    return cpu_info().describe()
