"""tradehost actors: the layers every process shares (see docs/architecture.md): ``core`` (pure
rules and domain types), ``ml`` (features, models, candle files), ``broker`` (the Broker seam, the
OANDA client, the shadow book, the emulator), ``runtime`` (actor, process, transport, messages,
journal), ``alerting`` (policy, mail) and ``roles`` (the thin shells of the tree's children).
"""

__all__: list[str] = []
