"""actors.broker.oanda."""
