"""Deep ensembles: M copies of a network trained together as one network.

Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017; for active learning
Beluch, Genewein, Nürnberger & Köhler, CVPR 2018 ("The power of ensembles for
active learning"). The members share the architecture and every batch and
differ in their initialisation: one ``init`` key is split into M keys, and
every variable gets a leading member axis of size M. One compiled train step
updates all M.

How the members are run is the backend's choice (`jal.platform.vectorized_members`):
vmapped over the member axis on GPU/TPU, one after another inside the same
compiled step on CPU, where vmapped convolutions become slow grouped
convolutions (measured in ``BENCHMARKS.md``). Both give the same variables
layout and the same numbers.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jal import platform


def _member(tree: Any, m: int) -> Any:
  return jax.tree.map(lambda v: v[m], tree)


def _stack(trees: Sequence[Any]) -> Any:
  return jax.tree.map(lambda *vs: jnp.stack(vs), *trees)


@dataclasses.dataclass(frozen=True, eq=False)
class Ensemble:
  """``num_members`` independent copies of ``member`` with stacked variables.

  It has the two methods of a flax module that jal calls, ``init`` and
  ``apply``, with the same signatures, so a `jal.training.Trainer` trains it
  like any task model. Variables are the member's with a leading axis M
  (e.g. ``params['backbone'][...]`` of shape ``[M, ...]``).

  Attributes:
    member: the network of one member, a `MultiHeadNet` with a
      ``'classifier'`` head.
    num_members: M.
    vectorize: vmap the members (True) or run them one after another in the
      same compiled function (False); None (default): the backend's choice
      (`jal.platform.vectorized_members`).
  """

  member: nn.Module
  num_members: int = 3
  vectorize: bool | None = None

  def _vectorized(self) -> bool:
    return platform.vectorized_members(self.vectorize)

  def init(self, rngs: dict[str, jax.Array], x: jax.Array, train: bool = False) -> dict:
    """Variables of M members drawn from M keys split from ``rngs['params']``.

    Returns:
      The member's variables with a leading axis M on every leaf.
    """
    keys = jax.random.split(rngs['params'], self.num_members)
    return _stack([self.member.init({'params': key}, x, train=train) for key in keys])

  def apply(self, variables: dict, x: jax.Array, train: bool, *,
            rngs: dict[str, jax.Array] | None = None, mutable: Any = False):
    """Runs every member on the same batch.

    Args:
      variables: stacked variables (see `init`).
      x: float ``[B, H, W, C]``, normalised.
      train: as for the member.
      rngs: optional streams (e.g. ``'dropout'``), split over the members.
      mutable: as in flax (``['batch_stats']`` in training).

    Returns:
      The outputs (and, with ``mutable``, the stacked new state):
      ``'classifier'``: float32 ``[B, C]``, the log of the members' mean
      predictive distribution ``log (1/M) sum_m softmax(logits_m)`` (valid
      logits: evaluation and the uncertainty scores read the ensemble's
      prediction from it); ``'members'``: float32 ``[B, M, C]``, each member's
      logits (what each member is trained on); ``'features'``: float32
      ``[B, M * D]``, the members' pooled features side by side.
    """
    rngs = rngs or {}
    split = {name: jax.random.split(key, self.num_members) for name, key in rngs.items()}

    def one(member_variables, member_rngs):
      return self.member.apply(member_variables, x, train=train, rngs=member_rngs,
                               mutable=mutable)

    if self._vectorized():
      results = jax.vmap(one)(variables, split)
    else:
      results = _stack([one(_member(variables, m), _member(split, m))
                        for m in range(self.num_members)])
    outputs, state = results if mutable else (results, None)
    logits = outputs['classifier'].astype(jnp.float32)  # [M, B, C]
    log_mean = (jax.scipy.special.logsumexp(jax.nn.log_softmax(logits, -1), axis=0)
                - jnp.log(self.num_members))
    features = jnp.transpose(outputs['features'], (1, 0, 2))
    combined = {'classifier': log_mean, 'members': jnp.transpose(logits, (1, 0, 2)),
                'features': features.reshape(x.shape[0], -1)}
    return (combined, state) if mutable else combined
