"""tradehost supervisor: the root process, its state machine, the bus and the ctl interface."""

__all__: list[str] = []
