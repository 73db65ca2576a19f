"""The pure core: domain types, every role's configuration, and the trading rules the live roles and
``tradehost backtest`` both call (bars, ticks, market hours, gate, sizing, money, entry, zones,
exits, fills, the reconciliation compare). Stdlib and numpy only; it imports nothing of the
project outside itself.
"""
