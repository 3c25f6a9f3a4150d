"""``python -m fxcap.cli`` runs the command line (as ``fxcap`` and ``python -m fxcap`` do)."""

from fxcap.cli import main

main()
