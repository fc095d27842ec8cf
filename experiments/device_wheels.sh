#!/usr/bin/env bash
# Wheels for the lent GPU machine: the pure-Python packages that
# experiments/device_check.py imports and that machine's image lacks.
#
#   bash experiments/device_wheels.sh        # here, where pip reaches the registry
#
# The machine has no network; its python3 (3.12) holds jax, flax, optax,
# chex, absl-py, scikit-learn, scipy, tqdm, pyyaml and torch (its package
# list: the device README's KINDS.md), but not ml-collections, which jal
# imports (configs, `jal.train.config`). TensorFlow, tfds and clu, which it
# also lacks, are off the device check's path (tests/test_device_check.py
# runs the check with them blocked). jal itself travels as source and is
# imported from the checkout (device_check.py puts it first on sys.path),
# so nothing is built there.
#
# The wheels land in .device_wheels/ (ignored by git); a `run` carries it
# (BENCHMARKS.md, "Device check (H200)", has the whole command).
set -euo pipefail
cd "$(dirname "$0")/.."
dest=.device_wheels
rm -rf "$dest"
mkdir -p "$dest"
# The version jal pins (pyproject.toml); --no-deps: its own needs (absl-py,
# PyYAML) are on the machine.
pin=$(grep -o '"ml-collections==[^"]*"' pyproject.toml | tr -d '"')
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 \
  -d "$dest" "$pin"
for wheel in "$dest"/*.whl; do
  echo "$wheel: $(du -k "$wheel" | cut -f1) KiB; needs:" \
    "$(unzip -p "$wheel" '*/METADATA' | grep '^Requires-Dist' | grep -v extra | cut -d' ' -f2- | paste -sd, -)"
done
