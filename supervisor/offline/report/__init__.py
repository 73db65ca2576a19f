"""``tradehost report``: the go-live checklist of a shadow run against its backtest."""
