"""actors.roles.watchdog."""
