"""The execution role: its actor, the order desk (every broker call, one at a time), intents as
order requests, and the memos of its trades.
"""
