"""actors.roles.execution."""
