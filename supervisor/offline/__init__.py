"""supervisor.offline."""
