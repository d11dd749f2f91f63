"""``python -m aha``: the ``aha`` command."""

from .cli import main


main()
