"""The reconciler role: its actor, and the state it keeps across restarts."""
