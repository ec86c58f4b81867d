"""python -m duralane.cli runs the duralane command."""

from duralane.cli import main

raise SystemExit(main())
