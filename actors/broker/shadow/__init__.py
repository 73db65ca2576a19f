"""Shadow trading: the virtual book that fills on live prices (nothing reaches the broker's order
path) and its crash-safe state.
"""
