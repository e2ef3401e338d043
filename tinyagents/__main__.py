"""``python -m tinyagents``: the same as the ``tinyagents`` command."""

from .cli import main

main()
