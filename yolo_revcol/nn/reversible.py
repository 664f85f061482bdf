"""The reversible autograd path: train a stack of columns while storing only the stem output and the last column.

Forward runs every column without building a graph. Backward walks the columns from last to first and, inside a
column, the levels from coarsest (3) to finest (0). At each level it recomputes the level body with grad enabled,
uses it twice, and then frees it:

* backpropagates the level's output gradient into its inputs, its parameters and alpha;
* reconstructs the previous column's state at that level as (state - body) / alpha.

Level l of the previous column is needed by level l - 1 of this column (as its up input), which is exactly the
next level visited, so reconstruction and backpropagation proceed in one sweep and at most one level's graph is
alive at a time. Training memory is therefore independent of the number of columns.

BatchNorm layers (the c2f block family) normalise with batch statistics in both the forward and the recomputation,
but only the forward may update their running statistics: recomputation runs with running-statistics tracking
switched off, so each training step moves them exactly once, as plain backprop does.

Columns under intermediate supervision hand their states out as extra outputs of the function; the gradients that
come back for them are added to the gradients of the reconstructed states when the reverse pass reaches that
column, so they flow through every earlier column exactly as in plain backprop.

Parameters are passed through the autograd function and their gradients are returned from ``backward`` instead of
being accumulated into ``.grad`` by nested backward calls, so DistributedDataParallel (with or without
``find_unused_parameters``) sees exactly one gradient per parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch
from torch import nn

from .column import NUM_LEVELS, Column

__all__ = (
    "MAX_RECONSTRUCTED",
    "LevelGrads",
    "ReversibleColumns",
    "auto_checkpoint_every",
    "compute_dtype",
    "level_parameters",
    "reconstruct_states",
    "reversible_parameters",
)

# Longest run of consecutive columns the reverse pass may rebuild by reconstruction, by compute dtype, so that
# gradients stay near plain backprop with trained-like weights (|alpha| down to 0.1). Measured on tiny RevCols:
# every reconstructed column multiplies the error about 10-20x (float64: about 1e-10 after 3 columns; float32: about
# 3e-5 after 1, 6e-4 after 2, for the c2f block). Under 16-bit compute a single reconstructed column already moves
# gradients by up to 2e-2 (bf16, c2f block: one rounding step shifts BatchNorm batch statistics), so there every
# column's states are kept: no reconstruction, still none of the activations inside the columns.
MAX_RECONSTRUCTED = {torch.float64: 3, torch.float32: 1}  # any other dtype: 0


class _RngStates:
    """RNG states captured before each (column, level) so recomputation draws the same DropPath masks."""

    def __init__(self, device: torch.device):
        """Prepare to capture the CPU generator and, for CUDA inputs, that device's generator."""
        self.device = device if device.type == "cuda" else None
        self.states: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor | None]] = {}

    def capture(self, key: tuple[int, int]) -> None:
        """Record the generators' current states under ``key``."""
        cuda = torch.cuda.get_rng_state(self.device) if self.device is not None else None
        self.states[key] = (torch.get_rng_state(), cuda)

    @contextmanager
    def replay(self, key: tuple[int, int]) -> Iterator[None]:
        """Run the body from the states recorded under ``key``; the caller's RNG state is restored afterwards."""
        cpu, cuda = self.states[key]
        with torch.random.fork_rng(devices=[self.device] if self.device is not None else []):
            torch.set_rng_state(cpu)
            if cuda is not None:
                torch.cuda.set_rng_state(cuda, self.device)
            yield


@contextmanager
def _frozen_running_stats(module: nn.Module) -> Iterator[None]:
    """Let BatchNorms in ``module`` normalise with batch statistics without updating their running statistics."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for m in norms:
        m.track_running_stats = False  # training-mode BN then uses batch stats and leaves running ones untouched
    try:
        yield
    finally:
        for m in norms:
            m.track_running_stats = True


def _autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    """Return whether autocast is on for ``device_type`` and its dtype."""
    return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """Return the dtype the columns compute in for input ``x``: autocast's when autocast is on, else ``x``'s."""
    device_type = x.device.type
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else x.dtype


def auto_checkpoint_every(columns: int, dtype: torch.dtype) -> int:
    """Return the ``checkpoint_every`` that keeps reconstruction runs within ``MAX_RECONSTRUCTED`` for ``dtype``.

    With K = ``checkpoint_every``, the reverse pass restarts from exact states every K columns, so at most K - 1
    consecutive columns are reconstructed (all N - 1 before the last with K = 0).

    Args:
        columns (int): Number of columns.
        dtype (torch.dtype): Compute dtype (see ``compute_dtype``).

    Returns:
        (int): 0 (keep no column) when N - 1 reconstructed columns are within the limit, else the limit plus one.
    """
    longest = MAX_RECONSTRUCTED.get(dtype, 0)
    return 0 if columns - 1 <= longest else longest + 1


def _uses_dropout(columns: Sequence[Column]) -> bool:
    """Whether any module would draw random numbers in training mode (DropPath or dropout)."""
    return any(getattr(m, "p", 0.0) > 0.0 for col in columns for m in col.modules())


class ReversibleColumns(torch.autograd.Function):
    """Run columns 1..N keeping only the stem output and column N's states (plus optional checkpoints).

    ``apply(columns, checkpoint_every, report, supervised, x, *params)`` returns column N's four states, then the
    four states of every column listed in ``supervised`` (indices before the last, for auxiliary heads). ``params``
    must be ``reversible_parameters(columns)`` (every trainable parameter, level by level); their gradients are
    returned from ``backward`` by position.

    The first column depends on the stem output alone, so backward recomputes its finest state exactly and
    compares it with the one reconstructed through all later columns: that relative error is the true accumulated
    reconstruction error of the pass. It is handed to ``report`` (a callable, or None) as a 0-d tensor.
    """

    @staticmethod
    def forward(
        ctx,
        columns: nn.ModuleList,
        checkpoint_every: int,
        report: Callable[[torch.Tensor], None] | None,
        supervised: tuple[int, ...],
        x: torch.Tensor,
        *params: torch.Tensor,
    ):
        """Compute all columns without keeping their activations."""
        ctx.columns = columns
        ctx.report = report
        ctx.params = params
        ctx.spans = _parameter_spans(columns, params)
        ctx.device_type = x.device.type
        ctx.autocast = _autocast_state(x.device.type)
        ctx.rng = _RngStates(x.device) if columns.training and _uses_dropout(columns) else None
        ctx.consumed = False
        ctx.supervised = supervised

        checkpoints: dict[int, int] = {}  # column index -> position of its first state in saved tensors
        saved: list[torch.Tensor] = []
        handed_out: list[torch.Tensor] = []  # states of the supervised columns, returned after the last column's
        states = None
        with torch.no_grad():
            for k, column in enumerate(columns):
                new_states, down = [], x
                for i in range(NUM_LEVELS):
                    if ctx.rng is not None:
                        ctx.rng.capture((k, i))
                    down = column.level_forward(i, down, states)
                    new_states.append(down)
                states = new_states
                if k in supervised:
                    handed_out.extend(states)
                # Checkpoint every K-th column (never the last one, which is saved anyway) to reset the
                # reconstruction error of the reverse pass.
                if checkpoint_every and (k + 1) % checkpoint_every == 0 and k + 1 < len(columns):
                    checkpoints[k] = len(saved)
                    saved.extend(states)
        ctx.checkpoints = checkpoints
        ctx.save_for_backward(x, *states, *saved)
        return (*states, *handed_out)

    @staticmethod
    def backward(ctx, *grad_states: torch.Tensor):
        """Walk the columns last to first, levels coarsest to finest, undoing each level's two equations.

        At level l of column k the body Level_l(c_{l-1}^(k), c_{l+1}^(k-1)) is recomputed with grad enabled, then
        c_l^(k-1) = (c_l^(k) - body) / alpha is reconstructed (unless a checkpoint holds it) and the gradient of
        c_l^(k) = body + alpha * c_l^(k-1) is backpropagated into the level's inputs and parameters.
        """
        if torch.is_grad_enabled():
            raise RuntimeError(
                "RevCol's reversible path does not support double backward (create_graph=True); "
                "set RevCol.reversible = False to differentiate through gradients"
            )
        if ctx.consumed:
            raise RuntimeError(
                "RevCol's reversible path can run backward only once per forward (retain_graph=True is not "
                "supported); set RevCol.reversible = False to backpropagate through the same graph twice"
            )
        ctx.consumed = True
        x, *rest = ctx.saved_tensors
        states, saved = list(rest[:NUM_LEVELS]), rest[NUM_LEVELS:]
        columns: nn.ModuleList = ctx.columns
        param_grads: list[torch.Tensor | None] = [None] * len(ctx.params)
        grads = [torch.zeros_like(s) if g is None else g for s, g in zip(states, grad_states)]
        # Gradients arriving from auxiliary heads, by column: joined in when the reverse pass reaches that column.
        aux_grads = {k: grad_states[NUM_LEVELS * (j + 1) : NUM_LEVELS * (j + 2)] for j, k in enumerate(ctx.supervised)}
        grad_x = None
        x_in = x.detach().requires_grad_(ctx.needs_input_grad[4])

        enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(ctx.device_type, dtype=dtype, enabled=enabled):
            for k in reversed(range(len(columns))):
                column, first = columns[k], k == 0
                grads = [_add(g, a) for g, a in zip(grads, aux_grads.get(k, [None] * NUM_LEVELS))]
                prev = None if first else _checkpointed(ctx.checkpoints.get(k - 1), saved)
                prev_grads: list[torch.Tensor | None] = [None] * NUM_LEVELS
                for i in reversed(range(NUM_LEVELS)):
                    down = x_in if i == 0 else states[i - 1].detach().requires_grad_()
                    replay = ctx.rng.replay((k, i)) if ctx.rng is not None else nullcontext()
                    with replay, _frozen_running_stats(column.levels[i]):
                        body = column.level_body(i, down, prev)  # Level_l(c_{l-1}^(k), c_{l+1}^(k-1))
                    if prev is not None and prev[i] is None:  # c_l^(k-1) = (c_l^(k) - body) / alpha
                        with torch.no_grad():
                            prev[i] = column.level_inverse(i, states[i], body).detach().requires_grad_()
                    start, stop = ctx.spans[k][i]  # c_l^(k) = body + alpha * c_l^(k-1), backpropagated
                    step = _level_backward(column, i, body, down, prev, grads[i], ctx.params[start:stop])
                    # down -> the finer level of this column (or x); up and prev -> the previous column.
                    if i == 0:
                        grad_x = _add(grad_x, step.down)
                    else:
                        grads[i - 1] = _add(grads[i - 1], step.down)
                    if prev is not None:
                        prev_grads[i] = _add(prev_grads[i], step.prev)
                        if i + 1 < NUM_LEVELS:
                            prev_grads[i + 1] = _add(prev_grads[i + 1], step.up)
                    for j, g in enumerate(step.params, start):
                        param_grads[j] = _add(param_grads[j], g)
                    if first and i == 0 and len(columns) > 1 and ctx.report is not None:
                        with torch.no_grad():  # body = exact first-column state; states[0] = reconstructed one
                            true = body.float()
                            ctx.report((states[0].float() - true).norm() / true.norm().clamp_min(1e-30))
                    del body, step
                if prev is not None:
                    states = [s.detach() for s in prev]
                    grads = [torch.zeros_like(s) if g is None else g for s, g in zip(states, prev_grads)]
        ctx.columns = ctx.params = ctx.rng = ctx.report = None
        return (None, None, None, None, grad_x, *param_grads)


class LevelGrads(NamedTuple):
    """Gradients of one level's output c_l^(k) with respect to what it was computed from (None: not needed).

    Attributes:
        down (torch.Tensor | None): Its down input: c_{l-1}^(k), or the stem output at level 0.
        up (torch.Tensor | None): Its up input c_{l+1}^(k-1) from the previous column.
        prev (torch.Tensor | None): The previous column's state c_l^(k-1), through alpha.
        params (tuple[torch.Tensor | None, ...]): The level's and its alpha's parameters, in ``level_parameters`` order.
    """

    down: torch.Tensor | None
    up: torch.Tensor | None
    prev: torch.Tensor | None
    params: tuple[torch.Tensor | None, ...]


def _level_backward(
    column: Column,
    index: int,
    body: torch.Tensor,
    down: torch.Tensor,
    prev: list[torch.Tensor] | None,
    grad: torch.Tensor,
    params: Sequence[torch.Tensor],
) -> LevelGrads:
    """Backpropagate ``grad`` through c_l^(k) = body + alpha * c_l^(k-1) and the recomputed body.

    Args:
        column (Column): Column k.
        index (int): Level l.
        body (torch.Tensor): The level body, recomputed with grad enabled from ``down`` and ``prev``.
        down (torch.Tensor): The body's down input (a leaf, requiring grad when its gradient is needed).
        prev (list[torch.Tensor] | None): The previous column's states as leaves (entries ``index`` and
            ``index + 1`` are set); None for the first column.
        grad (torch.Tensor): Gradient of the loss with respect to c_l^(k).
        params (Sequence[torch.Tensor]): ``level_parameters(column, index)`` that require grad.

    Returns:
        (LevelGrads): The gradients, routed by position.
    """
    out = column.level_output(index, body, prev)
    up = prev[index + 1] if prev is not None and index + 1 < NUM_LEVELS else None
    inputs = (down, up, None if prev is None else prev[index])
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    got = iter(torch.autograd.grad(out, [*wanted, *params], grad, allow_unused=True))
    down_grad, up_grad, prev_grad = (next(got) if t is not None and t.requires_grad else None for t in inputs)
    return LevelGrads(down_grad, up_grad, prev_grad, tuple(got))


def _checkpointed(start: int | None, saved: Sequence[torch.Tensor]) -> list[torch.Tensor | None]:
    """The previous column's states as grad-requiring leaves when a checkpoint kept them (from ``saved[start]``);
    else four Nones, filled in by reconstruction."""
    if start is None:
        return [None] * NUM_LEVELS
    return [s.detach().requires_grad_() for s in saved[start : start + NUM_LEVELS]]


def level_parameters(column: Column, index: int) -> list[nn.Parameter]:
    """The trainable parameters that level ``index`` of ``column`` computes with: its level's, then its alpha's."""
    modules = [column.levels[index]] + ([] if column.alphas is None else [column.alphas[index]])
    return [p for m in modules for p in m.parameters() if p.requires_grad]


def reversible_parameters(columns: Sequence[Column]) -> list[nn.Parameter]:
    """Every trainable parameter of ``columns``, column by column and level by level: what ``apply`` expects."""
    return [p for column in columns for i in range(NUM_LEVELS) for p in level_parameters(column, i)]


def _parameter_spans(columns: Sequence[Column], params: Sequence[torch.Tensor]) -> list[list[tuple[int, int]]]:
    """Return where each level's parameters lie in ``params``: ``spans[k][i] = (start, stop)``.

    Raises:
        ValueError: If ``params`` is not ``reversible_parameters(columns)``, whose order the positions assume.
    """
    spans: list[list[tuple[int, int]]] = []
    expected: list[nn.Parameter] = []
    for column in columns:
        spans.append([])
        for i in range(NUM_LEVELS):
            level = level_parameters(column, i)
            spans[-1].append((len(expected), len(expected) + len(level)))
            expected += level
    if len(expected) != len(params) or any(p is not q for p, q in zip(expected, params)):
        raise ValueError("ReversibleColumns.apply takes reversible_parameters(columns) as params, in that order")
    return spans


def _add(total: torch.Tensor | None, value: torch.Tensor | None) -> torch.Tensor | None:
    """Sum two optional gradients."""
    if value is None:
        return total
    return value if total is None else total + value


@torch.no_grad()
def reconstruct_states(
    columns: Sequence[Column], x: torch.Tensor, last: Sequence[torch.Tensor]
) -> list[list[torch.Tensor]]:
    """Recover every column's states from the stem output and the last column, as the reverse pass does.

    Used to measure reconstruction error against the true forward activations. DropPath must be inactive (eval
    mode or p = 0), since no RNG state is replayed here.

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
            prev[i] = column.level_inverse(i, states[i], column.level_body(i, down, prev))
        result.insert(0, prev)
    return result
