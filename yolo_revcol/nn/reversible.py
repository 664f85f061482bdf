"""The reversible autograd path: train columns keeping only the stem output, the last column's states and the bits
the forward's rounding discards.

Forward runs the columns without a graph and records, per level, which of a few consecutive floats the previous
state was (``_LostBits``). Backward walks the columns last to first, each from its coarsest level to its finest:
recompute the level body, rebuild the previous column's state from it exactly, backpropagate the level. At most one
level's graph is alive, so memory does not grow with the column count.

Invariants: the forward is plain backprop's, operation for operation; with deterministic kernels every state is
rebuilt bit for bit, so gradients equal plain backprop's (the first column's error is reported to check it); DropPath
masks are replayed and BatchNorm running statistics move once per step; parameter gradients are returned from
``backward``, one per parameter, as DistributedDataParallel expects. Measurements: docs/design.md, "Notes on the
reverse pass".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import NamedTuple

import torch
from torch import nn

from .column import NUM_LEVELS, Column

__all__ = (
    "LevelGrads",
    "ReversibleColumns",
    "level_parameters",
    "reversible_parameters",
)


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


def _uses_dropout(columns: Sequence[Column]) -> bool:
    """Whether any module would draw random numbers in training mode (DropPath or dropout)."""
    return any(getattr(m, "p", 0.0) > 0.0 for col in columns for m in col.modules())


def _alpha(column: Column, index: int, dtype: torch.dtype) -> torch.Tensor:
    """Alpha of level ``index`` as the forward multiplies with it: shaped (C, 1, 1), in the states' ``dtype``."""
    return column.alphas[index].scale().view(-1, 1, 1).to(dtype)


# Integer type of the same width as each float type whose states the reverse pass reconstructs exactly.
_INT_OF = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32}
_INT_OF[torch.float64] = torch.int64
_INT64_MAX = torch.iinfo(torch.int64).max


def _order_key(v: torch.Tensor) -> torch.Tensor:
    """Map floats to int64 keys in the same order: consecutive floats get consecutive keys (-0.0 just below +0.0)."""
    bits = v.view(_INT_OF[v.dtype])
    return (bits ^ ((bits >> (bits.element_size() * 8 - 1)) & torch.iinfo(bits.dtype).max)).long()


def _from_order_key(key: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Undo ``_order_key``: the floats of ``dtype`` whose keys are ``key``."""
    bits = key.to(_INT_OF[dtype])
    return (bits ^ ((bits >> (bits.element_size() * 8 - 1)) & torch.iinfo(bits.dtype).max)).view(dtype)


@functools.cache
def _finite_keys(dtype: torch.dtype) -> tuple[int, int]:
    """The smallest and largest key of a finite float of ``dtype``."""
    top = int(_order_key(torch.tensor(torch.finfo(dtype).max, dtype=dtype)))
    return -top - 1, top


@functools.cache
def _infinities(dtype: torch.dtype, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """-inf and +inf as 0-d tensors of ``dtype`` on ``device`` (``nextafter`` targets)."""
    return torch.tensor(-math.inf, dtype=dtype, device=device), torch.tensor(math.inf, dtype=dtype, device=device)


def _midpoint(v: torch.Tensor, side: int) -> torch.Tensor:
    """In float64, where the real numbers that round to each float of ``v`` end: the midpoint to its neighbour below
    (``side`` -1) or above (+1).

    Exact for 16- and 32-bit ``v`` (two neighbouring floats, their sum and its half fit float64). A float64 ``v`` has
    no wider type here, so its neighbour itself is returned: a wider bound, never a narrower one.
    """
    neighbour = torch.nextafter(v, _infinities(v.dtype, v.device)[side > 0])
    if v.dtype == torch.float64:
        return neighbour
    return (v.double() + neighbour.double()).mul_(0.5)


def _ceil(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The smallest float of ``dtype`` >= float64 ``x`` (rounding to nearest lands on it or on the float below)."""
    t = x.to(dtype)
    return torch.where(t.double() < x, torch.nextafter(t, _infinities(dtype, t.device)[1]), t)


def _floor(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The largest float of ``dtype`` <= float64 ``x``."""
    t = x.to(dtype)
    return torch.where(t.double() > x, torch.nextafter(t, _infinities(dtype, t.device)[0]), t)


def _candidates(body: torch.Tensor, alpha: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bracket, per element, the floats v that the forward's ``state = body + v * alpha`` can have come from.

    Walks back the forward's two roundings (p = v * alpha, then body + p). The bracket depends only on the bits of its
    inputs, so both passes get the same one; it need not be tight, and an element outside it is kept aside.

    Args:
        body (torch.Tensor): The recomputed level body.
        alpha (torch.Tensor): |alpha| shaped (C, 1, 1), in the states' dtype.
        state (torch.Tensor): This column's state.

    Returns:
        (tuple[torch.Tensor, torch.Tensor]): The key of the bracket's first float and its size n >= 1 (int64).
    """
    dtype, b = state.dtype, body.double()
    p_lo, p_hi = _ceil(_midpoint(state, -1).sub_(b), dtype), _floor(_midpoint(state, 1).sub_(b), dtype)
    a = alpha.double()  # divided by, not multiplied by its reciprocal: exact quotients stay exact, ties included
    v_lo, v_hi = _ceil(_midpoint(p_lo, -1).div_(a), dtype), _floor(_midpoint(p_hi, 1).div_(a), dtype)
    kmin, kmax = _finite_keys(dtype)
    first, last = _order_key(v_lo), _order_key(v_hi)
    if dtype == torch.float64:  # the subtraction and division above round: widen by a few floats
        first, last = first - 2, last + 2
    first, last = first.clamp_(kmin, kmax), last.clamp_(kmin, kmax)
    return first, (last - first + 1).clamp_min_(1)


class _LostBits:
    """Per-element stacks of the previous states' positions in their brackets: ``pop`` undoes ``push`` exactly.

    For c = body + c' * alpha, ``push`` stores c''s index j in its bracket of n floats (``_candidates``) as
    stack = stack * n + j; ``pop`` recomputes the bracket and takes j = stack % n, so columns come off in the opposite
    order they went on. Stacks are int32 below ``WIDE_FROM`` columns, else int64. Elements outside their bracket
    (exceptions) and stacks that would overflow (spills) are kept aside by index and value.
    """

    WIDE_FROM = 9  # columns from which stacks are int64

    def __init__(self, columns: int | None = None):
        """Start with empty stacks (created by the first push), no exceptions and no spills.

        Args:
            columns (int | None): Columns of the pass, which set the stacks' integer type; None: int64.
        """
        self.dtype = torch.int32 if columns is not None and columns < self.WIDE_FROM else torch.int64
        self.stacks: list[torch.Tensor | None] = [None] * NUM_LEVELS
        self.aside: dict[tuple[int, int, str], tuple[torch.Tensor, torch.Tensor]] = {}  # (column, level, kind)

    def push(
        self, column: int, level: int, prev: torch.Tensor, body: torch.Tensor, alpha: torch.Tensor, state: torch.Tensor
    ) -> None:
        """Record where ``prev`` (c') lies in its bracket, for ``state = body + prev * alpha`` at (column, level)."""
        sign = _sign(alpha)
        first, count = _candidates(body, alpha.abs(), state)
        j = _order_key(prev if sign is None else prev * sign) - first
        outside = (j < 0) | (j >= count)
        if bool(outside.any()):
            self._put_aside(column, level, "exception", outside, prev)
            count, j = count.masked_fill(outside, 1), j.masked_fill(outside, 0)
        stack = torch.zeros_like(j) if self.stacks[level] is None else self.stacks[level].long()  # int64 arithmetic
        top = min(_INT64_MAX, torch.iinfo(self.dtype).max)
        full = stack > torch.div(top - j, count, rounding_mode="floor")
        if bool(full.any()):
            self._put_aside(column, level, "spill", full, stack)
            stack = stack.masked_fill(full, 0)
        self.stacks[level] = (stack * count + j).to(self.dtype)

    def pop(
        self, column: int, level: int, body: torch.Tensor, alpha: torch.Tensor, state: torch.Tensor
    ) -> torch.Tensor:
        """Return the previous column's state c' at ``level``, exactly as the forward had it."""
        sign = _sign(alpha)
        first, count = _candidates(body, alpha.abs(), state)
        exception = self.aside.pop((column, level, "exception"), None)
        if exception is not None:
            count = count.reshape(-1).index_fill(0, exception[0], 1).view_as(count)
        kept = self.stacks[level]
        stack = kept.long()
        j = torch.remainder(stack, count)
        stack = torch.div(stack, count, rounding_mode="floor")
        spill = self.aside.pop((column, level, "spill"), None)
        if spill is not None:
            stack = stack.reshape(-1).index_copy(0, *spill).view_as(stack)
        self.stacks[level] = stack.to(kept.dtype)
        prev = _from_order_key(first + j, state.dtype)
        prev = prev if sign is None else prev * sign
        if exception is not None:
            prev = prev.reshape(-1).index_copy(0, *exception).view_as(prev)
        return prev

    def _put_aside(self, column: int, level: int, kind: str, mask: torch.Tensor, values: torch.Tensor) -> None:
        """Keep ``values`` where ``mask`` is set, by flat index, under (column, level, kind)."""
        where = mask.reshape(-1).nonzero().squeeze(1)
        self.aside[(column, level, kind)] = (where, values.reshape(-1)[where])

    def tensors(self) -> list[torch.Tensor]:
        """What backward needs, flat, for ``save_for_backward``: the stacks, then every index and value kept aside."""
        stacks = [s for s in self.stacks if s is not None]
        return stacks + [t for pair in self.aside.values() for t in pair]

    def layout(self) -> tuple[list[int], list[tuple[int, int, str]]]:
        """How ``tensors()`` is laid out: the levels that have stacks, and the keys of what was kept aside."""
        return [i for i, s in enumerate(self.stacks) if s is not None], list(self.aside)

    @classmethod
    def restore(
        cls, layout: tuple[list[int], list[tuple[int, int, str]]], tensors: Sequence[torch.Tensor]
    ) -> _LostBits:
        """Rebuild from ``layout()`` and the saved ``tensors()``."""
        lost, (levels, keys) = cls(), layout
        for n, level in enumerate(levels):
            lost.stacks[level] = tensors[n]
        rest = tensors[len(levels) :]
        lost.aside = {key: (rest[2 * n], rest[2 * n + 1]) for n, key in enumerate(keys)}
        return lost


def _sign(alpha: torch.Tensor) -> torch.Tensor | None:
    """Alpha's sign as +-1 in its dtype, or None when every alpha is positive (no flips needed)."""
    if bool((alpha > 0).all()):
        return None
    return torch.where(alpha < 0, -1.0, 1.0).to(alpha.dtype)


class ReversibleColumns(torch.autograd.Function):
    """Run columns 1..N keeping only the stem output and column N's states (plus the lost bits).

    ``apply(columns, report, supervised, x, *params)`` returns column N's four states, then the four states of every
    column in ``supervised`` (indices before the last, for auxiliary heads). ``params`` must be
    ``reversible_parameters(columns)``; their gradients are returned by position. Backward hands ``report`` (a
    callable, or None) the first column's relative reconstruction error as a 0-d tensor: 0 unless a kernel was not
    deterministic.
    """

    @staticmethod
    def forward(
        ctx,
        columns: nn.ModuleList,
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

        handed_out: list[torch.Tensor] = []  # states of the supervised columns, returned after the last column's
        lost = _LostBits(len(columns))
        states = None
        with torch.no_grad():
            for k, column in enumerate(columns):
                new_states, down = [], x
                for i in range(NUM_LEVELS):
                    if ctx.rng is not None:
                        ctx.rng.capture((k, i))
                    body = column.level_body(i, down, states)
                    down = column.level_output(i, body, states)
                    if states is not None:
                        lost.push(k, i, states[i], body, _alpha(column, i, down.dtype), down)
                    new_states.append(down)
                states = new_states
                if k in supervised:
                    handed_out.extend(states)
        ctx.lost = lost.layout()
        ctx.save_for_backward(x, *states, *lost.tensors())
        return (*states, *handed_out)

    @staticmethod
    def backward(ctx, *grad_states: torch.Tensor):
        """Walk the columns last to first (``_ReversePass.column``); return the stem output's and parameters' grads."""
        _check_first_backward(ctx)
        x, *rest = ctx.saved_tensors
        states, lost = list(rest[:NUM_LEVELS]), _LostBits.restore(ctx.lost, rest[NUM_LEVELS:])
        grads = _zeros_for_none(states, grad_states[:NUM_LEVELS])
        # Gradients arriving from auxiliary heads, by column: joined in when the reverse pass reaches that column.
        aux_grads = {k: grad_states[NUM_LEVELS * (j + 1) : NUM_LEVELS * (j + 2)] for j, k in enumerate(ctx.supervised)}
        walk = _ReversePass(ctx, x.detach().requires_grad_(ctx.needs_input_grad[3]), lost)
        enabled, dtype = ctx.autocast
        with torch.enable_grad(), torch.autocast(ctx.device_type, dtype=dtype, enabled=enabled):
            for k in reversed(range(len(ctx.columns))):
                grads = [_add(g, a) for g, a in zip(grads, aux_grads.get(k, (None,) * NUM_LEVELS))]
                states, grads = walk.column(k, states, grads)
        ctx.columns = ctx.params = ctx.rng = ctx.report = ctx.lost = None
        return (None, None, None, walk.grad_x, *walk.param_grads)


def _check_first_backward(ctx) -> None:
    """Raise unless this is the first backward through ``ctx`` and no graph of it is wanted; mark it consumed."""
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


def _zeros_for_none(states: Sequence[torch.Tensor], grads: Sequence[torch.Tensor | None]) -> list[torch.Tensor]:
    """``grads`` with every None replaced by zeros shaped like its state."""
    return [torch.zeros_like(s) if g is None else g for s, g in zip(states, grads)]


class _ReversePass:
    """One reversible backward, column by column: the steps of the two equations and the gradients they add up.

    Attributes:
        param_grads (list[torch.Tensor | None]): Gradient of every parameter of ``apply``, by position.
        grad_x (torch.Tensor | None): Gradient of the stem output.
    """

    def __init__(self, ctx, x: torch.Tensor, lost: _LostBits):
        """Start with no gradients; ``x`` is the stem output as a leaf, ``lost`` the forward's lost bits."""
        self.ctx, self.x, self.lost = ctx, x, lost
        self.param_grads: list[torch.Tensor | None] = [None] * len(ctx.params)
        self.grad_x: torch.Tensor | None = None

    def column(
        self, k: int, states: list[torch.Tensor], grads: list[torch.Tensor]
    ) -> tuple[list[torch.Tensor] | None, list[torch.Tensor] | None]:
        """Backpropagate column k, levels coarsest to finest; return column k-1's states and their gradients.

        Args:
            k (int): Column index.
            states (list[torch.Tensor]): Column k's four states (exact).
            grads (list[torch.Tensor]): The loss's gradients with respect to them.

        Returns:
            (tuple): Column k-1's states, rebuilt exactly, and their gradients; (None, None) for the first column.
        """
        prev = None if k == 0 else [None] * NUM_LEVELS
        prev_grads: list[torch.Tensor | None] = [None] * NUM_LEVELS
        for i in reversed(range(NUM_LEVELS)):  # level i's body reads prev[i + 1], rebuilt one step earlier
            down = self.x if i == 0 else states[i - 1].detach().requires_grad_()
            body = self.body(k, i, down, prev)
            if prev is not None:
                prev[i] = self.reconstruct(k, i, body, states[i])
            elif i == 0:
                self.report(body, states[0])
            step = self.level_backward(k, i, body, down, prev, grads[i])
            if i == 0:
                self.grad_x = _add(self.grad_x, step.down)
            else:
                grads[i - 1] = _add(grads[i - 1], step.down)
            if prev is not None:
                prev_grads[i] = _add(prev_grads[i], step.prev)
                if i + 1 < NUM_LEVELS:
                    prev_grads[i + 1] = _add(prev_grads[i + 1], step.up)
            del body, step  # at most one level's graph alive
        if prev is None:
            return None, None
        prev = [s.detach() for s in prev]
        return prev, _zeros_for_none(prev, prev_grads)

    def body(self, k: int, i: int, down: torch.Tensor, prev: list[torch.Tensor] | None) -> torch.Tensor:
        """Level_i(c_{i-1}^(k), c_{i+1}^(k-1)) recomputed with grad, the forward's DropPath masks, BN stats kept."""
        column = self.ctx.columns[k]
        replay = self.ctx.rng.replay((k, i)) if self.ctx.rng is not None else nullcontext()
        with replay, _frozen_running_stats(column.levels[i]):
            return column.level_body(i, down, prev)

    @torch.no_grad()
    def reconstruct(self, k: int, i: int, body: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """c_i^(k-1) = (c_i^(k) - body) / alpha_i^(k), bit for bit (``_LostBits.pop``), as a grad-requiring leaf."""
        alpha = _alpha(self.ctx.columns[k], i, state.dtype)
        return self.lost.pop(k, i, body.detach(), alpha, state).requires_grad_()

    def level_backward(
        self, k: int, i: int, body: torch.Tensor, down: torch.Tensor, prev: list[torch.Tensor] | None, grad
    ) -> LevelGrads:
        """Backpropagate ``grad`` through c_i^(k) = body + alpha * c_i^(k-1); add the level's parameter gradients."""
        start, stop = self.ctx.spans[k][i]
        step = _level_backward(self.ctx.columns[k], i, body, down, prev, grad, self.ctx.params[start:stop])
        for j, g in enumerate(step.params, start):
            self.param_grads[j] = _add(self.param_grads[j], g)
        return step

    @torch.no_grad()
    def report(self, exact: torch.Tensor, rebuilt: torch.Tensor) -> None:
        """Hand ``report`` the first column's ||rebuilt - exact|| / ||exact|| (the pass's accumulated error)."""
        if self.ctx.report is not None and len(self.ctx.columns) > 1:
            true = exact.double()
            self.ctx.report((rebuilt.double() - true).norm() / true.norm().clamp_min(1e-300))


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
