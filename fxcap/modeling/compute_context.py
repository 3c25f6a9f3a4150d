"""How models compute: the number of threads and the reference or fast path, set in one place.

A :class:`ComputeContext` says how many threads PyTorch's operations and the fast path's kernels use
(``threads``; the kernels split a batch over ``torch.get_num_threads()`` threads) and whether every
model runs its reference PyTorch code instead of the fast path (``reference``). Code that needs
other settings for a while enters :func:`compute_context`, which sets them and restores the previous
ones on exit, instead of changing process-wide settings for good::

    with compute_context(threads=1):          # e.g. per-step products of a small RNN
        render(...)
    with compute_context(reference=True):     # the readable PyTorch path, e.g. to compare
        model(x, knobs)

The process starts in :func:`default_context`: ``reference`` from the environment variable
``FXCAP_REFERENCE`` (1/true/yes), read once when this module is imported (the process boundary), and
torch's own thread count. The reference flag is held in a :class:`contextvars.ContextVar`, so a
context entered in one thread does not leak into another; the thread count is PyTorch's process-wide
setting, so it is restored on exit.
"""

from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping, TypeVar

import torch

REFERENCE_ENV = "FXCAP_REFERENCE"
"""Environment variable: set to 1 to run every model on its reference PyTorch path."""

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class ComputeContext:
    """Compute settings.

    Attributes:
        threads: threads of PyTorch's operations and of the fast path's kernels; ``None``: leave
            PyTorch's setting as it is.
        reference: run every model on its reference PyTorch path (the fast path is skipped).
    """

    threads: int | None = None
    reference: bool = False


def default_context(environ: Mapping[str, str] | None = None) -> ComputeContext:
    """The context a process starts in: ``reference`` from ``$FXCAP_REFERENCE``, torch's threads."""
    flag = (os.environ if environ is None else environ).get(REFERENCE_ENV, "").strip().lower()
    return ComputeContext(threads=None, reference=flag not in ("", "0", "false", "no"))


_CURRENT: ContextVar[ComputeContext] = ContextVar("fxcap_compute_context", default=default_context())


def current_context() -> ComputeContext:
    """The compute settings in force."""
    return _CURRENT.get()


def reference_forced() -> bool:
    """Whether the context in force asks for the reference path."""
    return _CURRENT.get().reference


@contextmanager
def compute_context(threads: int | None = None, reference: bool | None = None) -> Iterator[ComputeContext]:
    """Compute with ``threads`` threads and/or on the reference path (``None``: keep the setting in force)
    inside the ``with`` block; the previous settings come back on exit (exceptions included)."""
    if threads is not None and int(threads) < 1:
        raise ValueError(f"threads must be a positive integer or None, got {threads!r}")
    previous = _CURRENT.get()
    context = replace(previous, **{k: v for k, v in dict(threads=threads, reference=reference).items() if v is not None})
    torch_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)
        if threads is not None:
            torch.set_num_threads(torch_threads)


def in_compute_context(settings: Callable[..., ComputeContext]) -> Callable[[F], F]:
    """Decorator: run the function inside :func:`compute_context` with the settings that
    ``settings(**arguments)`` derives from the call's arguments (by name, defaults included)."""

    def decorate(func: F) -> F:
        import inspect

        signature = inspect.signature(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            context = settings(**bound.arguments)
            with compute_context(threads=context.threads, reference=context.reference or None):
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
