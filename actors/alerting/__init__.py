"""actors.alerting."""
