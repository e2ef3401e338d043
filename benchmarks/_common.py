"""What the benchmark scripts share."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["garbage_collection"]


@contextlib.contextmanager
def garbage_collection(enabled: bool) -> Iterator[None]:
    """Collect now, then run the block with the cyclic collector on or off (off by default
    in the scripts, as ``timeit`` does, so that collections do not land on one side)."""
    gc.collect()
    was_enabled = gc.isenabled()
    if enabled:
        gc.enable()
    else:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
        else:
            gc.disable()
