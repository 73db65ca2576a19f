"""``python -m supervisor`` is ``tradehost``."""

from supervisor.cli import main

raise SystemExit(main())
