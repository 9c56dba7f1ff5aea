"""``python -m egokit`` = the ``egokit`` command."""

from egokit.cli.main import main

main()
