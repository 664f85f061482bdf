"""Division-only inverses of RevCol's reversible connection, for benchmarks and tests.

``c_l^(k-1) = (c_l^(k) - body) / alpha`` in floating point misses the forward's rounding, so these rebuild the
previous column's states only approximately; ``ReversibleColumns`` rebuilds them exactly (``reversible.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .column import NUM_LEVELS, Column
from .layers import ReversibleScale

__all__ = ("level_inverse", "reconstruct_states", "scale_inverse")


def scale_inverse(alpha: ReversibleScale, y: torch.Tensor) -> torch.Tensor:
    """Return ``y / alpha`` per channel, in ``y``'s dtype: what ``alpha(x)`` was computed from, up to rounding."""
    return y / alpha.scale().view(-1, 1, 1).to(y.dtype)


def level_inverse(column: Column, index: int, state: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    """Return c_l^(k-1) = (c_l^(k) - body) / alpha_l^(k), the previous column's state at level ``index``.

    Args:
        column (Column): Column k (not the first, which has no alphas).
        index (int): Level l.
        state (torch.Tensor): Column k's state c_l^(k).
        body (torch.Tensor): ``column.level_body(index, down, prev)``, whose ``prev[index + 1]`` is already rebuilt.

    Returns:
        (torch.Tensor): The previous column's state, in ``state``'s dtype.
    """
    return scale_inverse(column.alphas[index], state - body)


@torch.no_grad()
def reconstruct_states(
    columns: Sequence[Column], x: torch.Tensor, last: Sequence[torch.Tensor]
) -> list[list[torch.Tensor]]:
    """Rebuild every column's states from the stem output and the last column's by division (``level_inverse``).

    DropPath must be inactive (eval mode or p = 0): no RNG state is replayed.

    Args:
        columns (Sequence[Column]): The columns, first to last.
        x (torch.Tensor): Stem output.
        last (Sequence[torch.Tensor]): The last column's four states.

    Returns:
        (list[list[torch.Tensor]]): States of columns 1..N (the last one is ``last`` itself).
    """
    result = [list(last)]
    for k in reversed(range(1, len(columns))):
        column, states = columns[k], result[0]
        prev: list[torch.Tensor | None] = [None] * NUM_LEVELS
        for i in reversed(range(NUM_LEVELS)):  # coarsest first: level i's body needs prev[i + 1]
            down = x if i == 0 else states[i - 1]
            prev[i] = level_inverse(column, i, states[i], column.level_body(i, down, prev))
        result.insert(0, prev)
    return result
