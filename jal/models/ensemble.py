"""Deep ensembles: M copies of a network trained together as one vmapped network.

Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017; for active learning
Beluch, Genewein, Nürnberger & Köhler, CVPR 2018 ("The power of ensembles for
active learning"). The members share the architecture and every batch, and
differ in their initialisation: ``nn.vmap`` splits the ``'params'`` PRNG
stream over the member axis, so one ``init`` key gives M independent draws,
and one compiled step updates all M.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class Ensemble(nn.Module):
  """``num_members`` independent copies of ``member``, run as one vmapped module.

  Parameters and batch statistics carry a leading member axis of size M
  (under ``params['member']``). Dropout streams, if any, are split too.

  Attributes:
    member: the network of one member, a `MultiHeadNet` with a
      ``'classifier'`` head.
    num_members: M.
  """

  member: nn.Module
  num_members: int = 3

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
    """Runs every member on the same batch.

    Args:
      x: float ``[B, H, W, C]``, normalised.
      train: as for the member (apply with ``mutable=['batch_stats']``).

    Returns:
      ``'classifier'``: float32 ``[B, C]``, the log of the members' mean
      predictive distribution ``log (1/M) sum_m softmax(logits_m)`` (valid
      logits: evaluation and the uncertainty scores read the ensemble's
      prediction from it); ``'members'``: float32 ``[B, M, C]``, each member's
      logits (what each member is trained on); ``'features'``: float32
      ``[B, M * D]``, the members' pooled features side by side.
    """
    members = nn.vmap(
        lambda module, x: module(x, train),
        variable_axes={'params': 0, 'batch_stats': 0},
        split_rngs={'params': True, 'dropout': True},
        in_axes=0, out_axes=0, axis_size=self.num_members)
    # Every member sees the same batch: broadcast it over the member axis.
    stacked = jnp.broadcast_to(x, (self.num_members, *x.shape))
    outputs = members(self.member, stacked)
    logits = outputs['classifier'].astype(jnp.float32)  # [M, B, C]
    log_mean = (jax.scipy.special.logsumexp(jax.nn.log_softmax(logits, -1), axis=0)
                - jnp.log(self.num_members))
    features = jnp.transpose(outputs['features'], (1, 0, 2))
    return {'classifier': log_mean, 'members': jnp.transpose(logits, (1, 0, 2)),
            'features': features.reshape(x.shape[0], -1)}
