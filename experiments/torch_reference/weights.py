"""Copying a jal network's variables into its PyTorch counterpart, for agreement checks."""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np
import torch
from torch import nn

# flax leaf name -> PyTorch attribute.
_NAMES = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias', 'mean': 'running_mean',
          'var': 'running_var'}

# remap[module path](leaf name, value) -> value: reorders a layer's values after
# the layout change (see `copy_jal_variables`).
Remap = Mapping[str, Callable[[str, np.ndarray], np.ndarray]]


def _module_path(module: nn.Module, modules: list[str]) -> str:
  """The PyTorch submodule of flax module path ``modules``.

  Submodules carry the flax names; a head ``heads_<name>`` is the attribute
  ``<name>``, and a head that is one linear layer in PyTorch (``classifier``,
  ``rotation``) takes the flax head's only dense layer (``heads_classifier/fc``
  is ``classifier``).
  """
  if modules and modules[0].startswith('heads_'):
    head = modules[0][len('heads_'):]
    single = isinstance(module.get_submodule(head), nn.Linear)
    modules = [head] if single else [head, *modules[1:]]
  return '.'.join(modules)


def copy_jal_variables(module: nn.Module, variables: Mapping[str, Any],
                       remap: Remap | None = None) -> None:
  """Copies flax ``variables`` (``params``, ``batch_stats``) into ``module`` by name, in place.

  Conv kernels go from HWIO to OIHW; a transposed convolution's kernel is
  also flipped in space (flax's `ConvTranspose` correlates the dilated input
  with the kernel, PyTorch's with the flipped kernel); dense kernels are
  transposed; BN ``scale``/``bias``/``mean``/``var`` become ``weight``/
  ``bias``/``running_mean``/``running_var``. ``remap`` then reorders a
  layer's values (a VAE's linear layers next to the flattening: jal flattens
  NHWC, PyTorch NCHW). A ``torch.compile``d module is filled through the
  module it wraps.

  Raises:
    ValueError: on a shape mismatch, or when a PyTorch parameter or running
      statistic is left unset.
  """
  module = getattr(module, '_orig_mod', module)
  assigned = set()

  def visit(tree, path):
    if isinstance(tree, Mapping):
      for key, value in tree.items():
        visit(value, path + (key,))
      return
    *modules, leaf = path
    module_path = _module_path(module, modules)
    target_module = module.get_submodule(module_path)
    value = np.array(tree, np.float32)
    if leaf == 'kernel':
      if value.ndim == 4 and isinstance(target_module, nn.ConvTranspose2d):
        value = value[::-1, ::-1].transpose(2, 3, 0, 1)
      elif value.ndim == 4:
        value = value.transpose(3, 2, 0, 1)
      else:
        value = value.T
    if remap and module_path in remap:
      value = remap[module_path](leaf, value)
    target = getattr(target_module, _NAMES[leaf])
    if tuple(target.shape) != value.shape:
      raise ValueError(f'{path}: jal shape {value.shape} != torch {tuple(target.shape)}')
    with torch.no_grad():
      target.copy_(torch.from_numpy(np.ascontiguousarray(value)))
    assigned.add(f'{module_path}.{_NAMES[leaf]}')

  for collection in ('params', 'batch_stats'):
    visit(variables.get(collection, {}), ())
  expected = {name for name, _ in module.named_parameters()}
  expected |= {name for name, _ in module.named_buffers() if 'running_' in name}
  if expected - assigned:
    raise ValueError(f'not set from the jal variables: {sorted(expected - assigned)}')
