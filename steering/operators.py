"""What steering does to a block's output at a steered position: the operators (`add`, `ablate`,
`ablate_then_add`, or any function `(h, v, alpha) -> h'`) and `steer_hidden`, which applies one at a mask of
positions and leaves every other position bit for bit alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from toolprior.steering_names import OPERATORS as OPERATOR_NAMES

# (h [..., d], v [d], alpha broadcastable to h[..., :1]) -> h'
Operator = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
Alpha = float | int | torch.Tensor | Sequence[float]


def add(h: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """h + alpha v."""
    return h + alpha * v


def ablate(h: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """h - (h.u) u, u = v / |v|: the component along the vector removed (alpha unused)."""
    u = v / v.norm().clamp_min(torch.finfo(v.dtype).tiny)
    return h - (h @ u).unsqueeze(-1) * u


def ablate_then_add(h: torch.Tensor, v: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Remove the component along v, then add alpha v: every position ends at the same coordinate alpha |v|."""
    return ablate(h, v, alpha) + alpha * v


OPERATORS: dict[str, Operator] = dict(zip(OPERATOR_NAMES, (add, ablate, ablate_then_add), strict=True))


def get_operator(operator: str | Operator) -> Operator:
    if callable(operator):
        return operator
    try:
        return OPERATORS[operator]
    except KeyError:
        raise ValueError(f"unknown steering operator {operator!r}; expected one of {', '.join(OPERATORS)}") from None


def steer_hidden(
    h: torch.Tensor,
    v: torch.Tensor,
    alpha: torch.Tensor,
    mask: torch.Tensor,
    operator: Operator,
    keep_norm: bool = False,
) -> torch.Tensor:
    """One block's output with the operator applied at `mask` ([B, T] bool) and left bit-for-bit alone elsewhere.

    h: [B, T, d]; v: [d]; alpha: [B] (one value per row)."""
    v = v.to(device=h.device, dtype=h.dtype)
    a = alpha.to(device=h.device, dtype=h.dtype).reshape(-1, *([1] * (h.dim() - 1)))
    if operator is add and not keep_norm:
        # one fused pass over [B, T, d] instead of three (add, scale, select): h + (alpha where steered, else 0) v;
        # h + 0 v is h (a -0.0 in h may come back as +0.0, equal as a number)
        return torch.addcmul(h, a * mask.to(h.device).unsqueeze(-1).to(h.dtype), v)
    new = operator(h, v, a)
    if keep_norm:
        new = new * (h.norm(dim=-1, keepdim=True) / new.norm(dim=-1, keepdim=True).clamp_min(1e-12))
    return torch.where(mask.to(h.device).unsqueeze(-1), new, h)
