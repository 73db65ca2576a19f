"""The real broker: ``OandaBroker`` over oandapyV20 (the only module that imports it), the
translation of answers and errors, pacing and retries, precision of prices and units.
"""
