"""Experiment configs (``ml_collections``), big_vision style: one file per protocol.

Each file defines ``get_config(arg)``; variants come after a colon
(``configs/pal_cifar10.py:noisy,runlocal``). Shared pieces are in `common`.
"""
