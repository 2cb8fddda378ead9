"""``python -m chatd`` runs the daemon."""

from chatd.cli import main

raise SystemExit(main())
