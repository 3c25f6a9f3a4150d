"""``python -m fxcap`` runs the command line."""

from fxcap.cli import main

main()
