"""The prediction checked by a real training step at the chosen size, measured the way the
device reports memory: ``torch.cuda.max_memory_allocated`` on CUDA; on the CPU the growth of
the process's peak resident memory (VmHWM over VmRSS before the model is built), in a fresh
process (memory freed by the measurements could be reused) after a first step at batch 1 (the
code the step loads is not the step's memory)."""
from __future__ import annotations

import gc
import multiprocessing
import os

import torch

from basicsr_lite.plan.measure import Setting, g_step_iteration, planned_options

MMAP_THRESHOLD = 'MALLOC_MMAP_THRESHOLD_'


def _proc_kib(field: str) -> int:
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def _steps(opt: dict, device: torch.device, setting: Setting, before_model=None) -> None:
    from basicsr_lite.data.loading.loaders import build_train_loader
    from basicsr_lite.models import build_model
    planned = planned_options(opt, setting)
    loader, _ = build_train_loader(planned, device)
    batches = iter(loader)
    data = [next(batches), next(batches)]
    if before_model is not None:
        before_model()
    model = build_model(planned, device)
    start = g_step_iteration(planned)
    for i, batch in enumerate(data):
        model.feed_data(batch)
        model.optimize_parameters(start + i * planned['train'].get('net_d_iters', 1))
        model.settle_steps()


def _cpu_child(opt: dict, setting: Setting) -> int:
    torch.manual_seed(0)
    # A first step at the smallest size loads the code the step runs (libraries, kernels): that
    # is the process's, not the step's; its freed tensors go back to the OS (large blocks are
    # mapped and unmapped one by one).
    _steps(opt, torch.device('cpu'), Setting(setting.gt_size, 1, setting.use_checkpoint))
    gc.collect()
    marks = {}

    def reset() -> None:
        with open('/proc/self/clear_refs', 'w') as f:
            f.write('5')  # the peak (VmHWM) starts again from the current resident size
        marks['before'] = _proc_kib('VmRSS')

    _steps(opt, torch.device('cpu'), setting, reset)
    return (_proc_kib('VmHWM') - marks['before']) * 1024


def real_step_peak(opt: dict, device: torch.device, setting: Setting) -> tuple[int, str]:
    """(bytes, how measured) of a real step at ``setting``."""
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        _steps(opt, device, setting)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base, 'torch.cuda.max_memory_allocated'
    # glibc's malloc raises its mmap threshold as large blocks are freed, then keeps freed heap
    # memory resident: the process's peak would measure that policy, not the step. A fixed
    # threshold returns every large block at once.
    saved = os.environ.get(MMAP_THRESHOLD)
    os.environ[MMAP_THRESHOLD] = '65536'
    try:
        with multiprocessing.get_context('spawn').Pool(1) as pool:
            measured = pool.apply(_cpu_child, (opt, setting))
    finally:
        if saved is None:
            del os.environ[MMAP_THRESHOLD]
        else:
            os.environ[MMAP_THRESHOLD] = saved
    return measured, 'peak resident memory of a fresh process'
