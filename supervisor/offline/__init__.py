"""The offline commands: ``tradehost train``, ``backtest`` and ``report``, with their inputs and
the broker's history. Only ``supervisor.cli`` imports them.
"""
