"""actors.roles.risk."""
