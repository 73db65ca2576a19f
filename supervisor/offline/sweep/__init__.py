"""``tradehost sweep``: walk-forward train + backtest cells of a parameter grid on a Dask cluster
(grid, cell, run, results).
"""
