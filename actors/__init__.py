"""tradehost actors: the roles of the process tree and what they share."""

__all__: list[str] = []
