"""What the tests and the benchmarks (bench/) both use: Debian's Chromium as they launch it,
network namespaces with real faults, a throwaway redis-server.

The benchmarks import it as ``tests.support`` (they run from the repository root as
modules: ``python3 -m bench.fanout``), the tests as ``.support``.
"""
