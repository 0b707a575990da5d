"""The benchmarks: each a module, run from the repository root (``python3 -m bench.fanout``,
``python3 -m bench.all`` for all of them) with peercam installed (``pip install -e '.[bench]'``).
"""
