"""supervisor.ctl."""
