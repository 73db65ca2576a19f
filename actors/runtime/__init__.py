"""The runtime every role process and the root share: ``RoleActor`` and its permit, the child
process, the worker threads, the ZeroMQ transport (the only zmq import) and the ctl's ZMTP client,
the message vocabulary, the journal, logs, exit codes and the role registry.
"""
