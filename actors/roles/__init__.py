"""The roles: one thin shell of I/O per child of the tree (feed, model, risk, execution,
reconciler, watchdog, emulator) around the pure rules of ``actors.core``. A role never imports
another role.
"""
