"""Module-level listener functions bound to what they need (the AppContext, a catalog)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any


def bind(func: Callable[..., Any], *deps: Any) -> Callable[..., Any]:
    """`func` with its leading arguments (`deps`) filled in, for Bolt to call.

    Bolt injects the remaining arguments by their names (ack, body, client...), which it
    reads from the partial's signature; the name is kept because Bolt tells lazy
    listeners apart by `__name__`. No `__wrapped__`: Bolt would then read the unbound
    signature and inject `ctx` as None.
    """
    bound = functools.partial(func, *deps)
    bound.__name__ = func.__name__  # type: ignore[attr-defined]
    bound.__qualname__ = func.__qualname__  # type: ignore[attr-defined]
    return bound
