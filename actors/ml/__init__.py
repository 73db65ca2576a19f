"""actors.ml."""
