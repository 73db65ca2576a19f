"""actors.broker.shadow."""
