"""actors.roles."""
