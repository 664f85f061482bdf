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

import torch
from torch import nn

from .column import NUM_LEVELS, Column

__all__ = ("MAX_RECONSTRUCTED", "ReversibleColumns", "auto_checkpoint_every", "compute_dtype", "reconstruct_states")

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
    must be every parameter of ``columns`` that requires grad; their gradients are returned from ``backward``.

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
        """Reconstruct earlier columns level by level and return gradients for x and every parameter."""
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
        index_of = {id(p): i for i, p in enumerate(ctx.params)}
        param_grads: list[torch.Tensor | None] = [None] * len(ctx.params)
        grads = [torch.zeros_like(s) if g is None else g for s, g in zip(states, grad_states)]
        # Gradients arriving from auxiliary heads, by column: joined in when the reverse pass reaches that column.
        aux_grads = {
            k: grad_states[NUM_LEVELS * (j + 1) : NUM_LEVELS * (j + 2)] for j, k in enumerate(ctx.supervised)
        }
        grad_x = None
        x_in = x.detach().requires_grad_(ctx.needs_input_grad[4])

        enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(ctx.device_type, dtype=dtype, enabled=enabled):
            for k in reversed(range(len(columns))):
                column = columns[k]
                first = k == 0
                grads = [_add(g, a) for g, a in zip(grads, aux_grads.get(k, [None] * NUM_LEVELS))]
                prev: list[torch.Tensor | None] = [None] * NUM_LEVELS
                prev_grads: list[torch.Tensor | None] = [None] * NUM_LEVELS
                if k - 1 in ctx.checkpoints:
                    start = ctx.checkpoints[k - 1]
                    prev = [s.detach().requires_grad_() for s in saved[start : start + NUM_LEVELS]]
                for i in reversed(range(NUM_LEVELS)):
                    down = x_in if i == 0 else states[i - 1].detach().requires_grad_()
                    up = None if first or i == NUM_LEVELS - 1 else prev[i + 1]
                    replay = ctx.rng.replay((k, i)) if ctx.rng is not None else nullcontext()
                    with replay, _frozen_running_stats(column.levels[i]):
                        body = column.level_body(i, down, None if first else prev)
                    out, inputs = body, [down] + ([up] if up is not None else [])
                    if not first:
                        alpha = column.alphas[i]
                        if prev[i] is None:  # reconstruct the previous column's state at this level
                            with torch.no_grad():
                                prev[i] = alpha.inverse(states[i] - body).detach().requires_grad_()
                        out = body + alpha(prev[i])
                        inputs.append(prev[i])
                    level_params = [p for p in column.levels[i].parameters() if id(p) in index_of]
                    if not first:
                        level_params += [p for p in column.alphas[i].parameters() if id(p) in index_of]
                    wanted = [t for t in inputs if t.requires_grad] + level_params
                    got = torch.autograd.grad(out, wanted, grads[i], allow_unused=True)
                    got = dict(zip(map(id, wanted), got))
                    # Route input gradients: down -> finer level of this column (or x), up / prev -> previous column.
                    if i == 0:
                        grad_x = _add(grad_x, got.get(id(down)))
                    else:
                        grads[i - 1] = _add(grads[i - 1], got.get(id(down)))
                    if up is not None:
                        prev_grads[i + 1] = _add(prev_grads[i + 1], got.get(id(up)))
                    if not first:
                        prev_grads[i] = _add(prev_grads[i], got.get(id(prev[i])))
                    for p in level_params:
                        j = index_of[id(p)]
                        param_grads[j] = _add(param_grads[j], got.get(id(p)))
                    if first and i == 0 and len(columns) > 1 and ctx.report is not None:
                        with torch.no_grad():  # body = exact first-column state; states[0] = reconstructed one
                            true = body.float()
                            ctx.report((states[0].float() - true).norm() / true.norm().clamp_min(1e-30))
                    del body, out, got
                if not first:
                    states = [s.detach() for s in prev]
                    grads = [torch.zeros_like(s) if g is None else g for s, g in zip(states, prev_grads)]
        ctx.columns = ctx.params = ctx.rng = ctx.report = None
        return (None, None, None, None, grad_x, *param_grads)


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
        for i in reversed(range(NUM_LEVELS)):
            down = x if i == 0 else states[i - 1]
            body = column.level_body(i, down, prev)
            prev[i] = column.alphas[i].inverse(states[i] - body)
        result.insert(0, prev)
    return result
