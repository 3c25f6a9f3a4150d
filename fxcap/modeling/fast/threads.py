"""Split a batch over threads: the numba kernels release the GIL, so plain Python threads run them in parallel.

The number of threads follows ``torch.get_num_threads()`` (what the compute context sets,
:mod:`fxcap.modeling.compute_context`), so the fast path uses the same cores as PyTorch would. The
pool is created on first use with more than one thread, grown when more are asked for, and shut down
when the process exits (:func:`shutdown`, registered with :mod:`atexit`).
"""

from __future__ import annotations

import atexit
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

import numpy as np
import torch

_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def chunks(batch: int, multiple: int = 1) -> list[tuple[int, int]]:
    """Split ``range(batch)`` into one contiguous ``(start, stop)`` per thread (at most
    ``torch.get_num_threads()``), with every boundary but the last a multiple of ``multiple`` when
    there are enough streams for that."""
    n = max(1, min(batch, torch.get_num_threads()))
    if batch >= n * multiple:
        units = batch // multiple
        bounds = np.linspace(0, units, n + 1).round().astype(int) * multiple
        bounds[-1] = batch
    else:
        bounds = np.linspace(0, batch, n + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def parallel(job: Callable[[int, int, int], None], parts: Sequence[tuple[int, int]]) -> None:
    """Run ``job(index, start, stop)`` for every part, on a thread pool when there are several."""
    global _pool, _pool_size
    if len(parts) == 1:
        job(0, *parts[0])
        return
    if _pool is None or _pool_size < len(parts):
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool, _pool_size = ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix="fxcap-fast"), len(parts)
    for future in [_pool.submit(job, i, a, b) for i, (a, b) in enumerate(parts)]:
        future.result()


def shutdown() -> None:
    """Stop the pool's threads (waiting for running jobs); the next :func:`parallel` call starts a new pool."""
    global _pool, _pool_size
    if _pool is not None:
        _pool.shutdown(wait=True)
    _pool, _pool_size = None, 0


atexit.register(shutdown)
