"""``python -m admin`` runs the ``ryla`` command line (used to start worker processes)."""

from admin.cli import main

main()
