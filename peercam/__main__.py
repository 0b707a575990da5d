"""``python -m peercam``: the ``peercam`` command."""

from peercam.cli import main

main()
