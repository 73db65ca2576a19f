"""The watchdog role: its actor and its checks (heartbeats, memory, progress of bars,
decisions and account reads, disk, clock).
"""
