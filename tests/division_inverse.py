"""Division-only inverses of the reversible connection, for tests: exact up to the forward's rounding,
which ``ReversibleColumns`` (reversible.py) recovers and these do not.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from yolo_revcol.nn.column import NUM_LEVELS, Column
from yolo_revcol.nn.layers import ReversibleScale

__all__ = ("level_inverse", "reconstruct_states", "scale_inverse")


def scale_inverse(alpha: ReversibleScale, y: torch.Tensor) -> torch.Tensor:
    """Return ``y / alpha`` per channel, in ``y``'s dtype."""
    return y / alpha.scale().view(-1, 1, 1).to(y.dtype)


def level_inverse(column: Column, index: int, state: torch.Tensor, body: torch.Tensor) -> torch.Tensor:
    """Return c_l^(k-1) = (state - body) / alpha_l^(k) for column k (not the first) and level l = ``index``."""
    return scale_inverse(column.alphas[index], state - body)


@torch.no_grad()
def reconstruct_states(
    columns: Sequence[Column], x: torch.Tensor, last: Sequence[torch.Tensor]
) -> list[list[torch.Tensor]]:
    """Return the states of every column, first to last, rebuilt by ``level_inverse`` from stem output ``x`` and the
    last column's states ``last`` (returned as they are). DropPath must be inactive: no RNG state is replayed."""
    result = [list(last)]
    for k in reversed(range(1, len(columns))):
        column, states = columns[k], result[0]
        prev: list[torch.Tensor | None] = [None] * NUM_LEVELS
        for i in reversed(range(NUM_LEVELS)):  # coarsest first: level i's body needs prev[i + 1]
            down = x if i == 0 else states[i - 1]
            prev[i] = level_inverse(column, i, states[i], column.level_body(i, down, prev))
        result.insert(0, prev)
    return result
