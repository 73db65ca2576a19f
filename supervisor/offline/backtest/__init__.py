"""``tradehost backtest``: the live rules replayed over history in one process (run, inputs,
decisions, the book, journal rows, metrics).
"""
