"""The model's side: features on wide frames, the model directory (CatBoost), candle files as
frames. Imports ``actors.core`` only.
"""
