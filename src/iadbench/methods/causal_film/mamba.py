"""A Mamba-style selective state-space block in plain PyTorch (runs on CPU, no custom kernels).

Gu and Dao's block: input projection to two branches; one goes through a causal depthwise
convolution and SiLU, then a selective scan whose step size ``dt`` and input/output maps ``B``,
``C`` depend on the token; the other gates the result through SiLU. The scan is a Python loop
over time, which is fine for the few hundred sensor steps of a weld run and keeps the block
causal by construction: output ``t`` depends on inputs ``<= t`` only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

D_STATE = 16
D_CONV = 4
EXPAND = 2


class SelectiveScanBlock(nn.Module):
    """``(B, T, dim) -> (B, T, dim)``, residual, pre-norm."""

    def __init__(
        self, dim: int, d_state: int = D_STATE, d_conv: int = D_CONV, expand: int = EXPAND
    ) -> None:
        super().__init__()
        inner = expand * dim
        self.dt_rank = math.ceil(dim / 16)
        self.norm = nn.LayerNorm(dim)
        self.in_proj = nn.Linear(dim, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        # S4D-real initialisation: A = -(1..d_state) per channel, stored as its log.
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(inner, 1)
        self.a_log = nn.Parameter(a.log())
        self.d = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[1]
        u, gate = self.in_proj(self.norm(x)).chunk(2, dim=-1)
        u = self.conv(u.transpose(1, 2))[..., :length].transpose(1, 2)  # causal: drop the tail
        u = F.silu(u)
        dt, b, c = self.x_proj(u).split([self.dt_rank, *2 * [self.a_log.shape[1]]], dim=-1)
        dt = F.softplus(self.dt_proj(dt))  # (B, T, inner)
        y = self._scan(u, dt, -self.a_log.exp(), b, c)
        return x + self.out_proj(y * F.silu(gate))

    def _scan(self, u, dt, a, b, c) -> torch.Tensor:
        """h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t ; y_t = C_t h_t + D u_t.

        Time is moved to the front and unbound once: indexing one step at a time would make
        autograd scatter every step's gradient into a full-size zero tensor (quadratic in T).
        """
        decay = torch.exp(dt.unsqueeze(-1) * a).transpose(0, 1).contiguous()  # (T, B, inner, state)
        drive = ((dt * u).unsqueeze(-1) * b.unsqueeze(2)).transpose(0, 1).contiguous()
        h = u.new_zeros(u.shape[0], u.shape[2], a.shape[1])
        outputs = []
        for decay_t, drive_t, c_t in zip(
            decay.unbind(0), drive.unbind(0), c.transpose(0, 1).unbind(0), strict=True
        ):
            h = decay_t * h + drive_t
            outputs.append((h * c_t.unsqueeze(1)).sum(-1))
        return torch.stack(outputs, dim=1) + u * self.d
