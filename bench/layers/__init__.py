"""The quality layers benchmark (issues 11 and 22), one module per part: cpu, timeline, switch
and fanout, with what they share in shared. ``python3 -m bench.layers`` runs them (see
__main__.py, or ``--help``).
"""
