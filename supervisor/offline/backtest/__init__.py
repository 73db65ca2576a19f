"""supervisor.offline.backtest."""
