"""``python -m actors.broker.emulator``: run the emulator from the shell."""

from __future__ import annotations

import sys

from actors.broker.emulator.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
