"""``tradehost ctl``: the server in the root (request dispatch), the client, the command bodies
(``operations``) and one module per command.
"""
