"""`python -m kdlab distill …`: the headless pipeline."""

from .cli import main

raise SystemExit(main())
