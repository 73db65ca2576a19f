"""actors.roles.reconciler."""
