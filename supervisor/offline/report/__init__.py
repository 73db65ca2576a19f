"""supervisor.offline.report."""
