"""Allow ``python -m bot`` as an alias of the ``borgerdialog`` command."""

from bot.cli import main

main()
