"""The risk role: its actor, and what it rebuilds from the journal after a restart."""
