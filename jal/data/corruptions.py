"""Image corruptions: the dataset shifts the evaluation suite measures under.

The "gaussian_blur" corruption of Hendrycks & Dietterich, "Benchmarking
Neural Network Robustness to Common Corruptions and Perturbations" (ICLR
2019), with the sigma tables of their ImageNet-C and CIFAR-10-C code. Host
side, NumPy and SciPy; the blurred test split is made once per run.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage

# Gaussian-blur sigma (pixels) per severity 1..5, from Hendrycks & Dietterich's
# corruption code (github.com/hendrycks/robustness): `gaussian_blur` in
# ImageNet-C/imagenet_c/imagenet_c/corruptions.py (224 x 224 images) and in
# ImageNet-C/create_c/make_cifar_c.py (32 x 32 images; the CIFAR-10-C set that
# SCAL's Fig. 4 shift uses).
GAUSSIAN_BLUR_SIGMAS = {
    'imagenet-c': (1.0, 2.0, 3.0, 4.0, 6.0),
    'cifar-10-c': (0.4, 0.6, 0.7, 0.8, 1.0),
}


def gaussian_blur(images: np.ndarray, severity: int, *,
                  benchmark: str = 'imagenet-c') -> np.ndarray:
  """The "gaussian_blur" corruption of Hendrycks & Dietterich (ICLR 2019).

  Per image and channel: ``x = images / 255``, a Gaussian filter of standard
  deviation ``sigma`` pixels over height and width (none across images or
  channels), clip to ``[0, 1]``, times 255, then truncation to uint8 (their
  ``np.uint8(...)``, a floor, not rounding; so a constant image may come back
  1 lower where float rounding falls just under the integer).

  ``sigma`` per severity 1..5 is `GAUSSIAN_BLUR_SIGMAS[benchmark]`, from their
  code (github.com/hendrycks/robustness): ``'imagenet-c'`` (1, 2, 3, 4, 6),
  ``corruptions.py``, for 224 px images; ``'cifar-10-c'`` (0.4, 0.6, 0.7, 0.8,
  1), ``make_cifar_c.py``, for 32 px images, which is the CIFAR-10-C shift of
  SCAL's (Krishnan et al. 2021) Fig. 4. The filter matches their ``skimage.filters.gaussian``
  call: ``mode='nearest'`` borders, kernel truncated at ``4 sigma``
  (``scipy.ndimage.gaussian_filter(..., mode='nearest', truncate=4.0)``).

  Args:
    images: uint8 ``[n, H, W, C]``.
    severity: int in ``1..5``.
    benchmark: ``'imagenet-c'`` or ``'cifar-10-c'``, the sigma table.

  Returns:
    uint8 ``[n, H, W, C]``, a new array.

  Raises:
    ValueError: ``images`` not uint8 ``[n, H, W, C]``, ``severity`` not an int
      in 1..5, or an unknown ``benchmark``.
  """
  images = np.asarray(images)
  if images.ndim != 4 or images.dtype != np.uint8:
    raise ValueError(f'images must be uint8 [n, H, W, C], got {images.dtype} {images.shape}')
  if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) \
      or not 1 <= severity <= 5:
    raise ValueError(f'severity must be an int in 1..5, got {severity!r}')
  if benchmark not in GAUSSIAN_BLUR_SIGMAS:
    raise ValueError(f'benchmark must be one of {sorted(GAUSSIAN_BLUR_SIGMAS)}, got {benchmark!r}')
  sigma = GAUSSIAN_BLUR_SIGMAS[benchmark][severity - 1]
  x = images.astype(np.float64) / 255.0
  # sigma 0 on the image and channel axes: each [H, W] plane is filtered alone.
  x = scipy.ndimage.gaussian_filter(x, sigma=(0.0, sigma, sigma, 0.0), mode='nearest',
                                    truncate=4.0)
  return (np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
