"""Schedules of the KL weight beta over training steps (jit-friendly)."""

import jax.numpy as jnp

KINDS = ("constant", "warmup", "cyclical")


def beta_at(step, *, kind: str, beta: float, num_steps: int, warmup_steps: int = 0,
            cycles: int = 4, ramp_fraction: float = 0.5):
  """KL weight at `step`.

  Args:
    step: training step (int or traced scalar).
    kind: 'constant'; 'warmup' (linear from 0 to beta over warmup_steps); 'cyclical' (the
      official VPL code's cosine annealing: `cycles` cycles over num_steps, each rising from
      0 to beta by a half cosine over its first `ramp_fraction`, then flat).
    beta: the final / peak weight.
  """
  step = jnp.asarray(step, jnp.float32)
  if kind == "constant":
    return jnp.float32(beta)
  if kind == "warmup":
    return beta * jnp.clip(step / max(warmup_steps, 1), 0.0, 1.0)
  if kind == "cyclical":
    period = max(num_steps / cycles, 1.0)
    ramp = jnp.clip((step % period) / (period * ramp_fraction), 0.0, 1.0)
    return beta * 0.5 * (1.0 - jnp.cos(jnp.pi * ramp))
  raise ValueError(f"loss.beta_schedule = {kind!r}; choose one of {KINDS}.")
