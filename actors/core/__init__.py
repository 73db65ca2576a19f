"""actors.core."""
