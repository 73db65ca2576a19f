"""The bus's topics (prefix-subscribed): one constant per topic; instrument-specific topics append
the instrument."""

TOPIC_MD_TICK = "md.tick."
TOPIC_MD_BAR = "md.bar."
TOPIC_MD_BARS = "md.bars"  # one BarsClosed after the bars of one close ("md.bar." does not match it)
TOPIC_MD_HEALTH = "md.health"
TOPIC_MODEL_SIGNAL = "model.signal."
TOPIC_MODEL_SKIPPED = "model.skipped"  # SignalSkipped: a published bar the model did not predict
TOPIC_RISK_INTENT = "risk.intent"
TOPIC_RISK_SKIP = "risk.skip"
TOPIC_EXEC_REPORT = "exec.report"
TOPIC_EXEC_HEALTH = "exec.health"
TOPIC_RECON_STATE = "recon.state"
TOPIC_RECON_HEALTH = "recon.health"  # the REST connection's BrokerHealth, on change
TOPIC_RECON_ACTION = "recon.action"  # ProtectionRequested: the reconciler asks execution to protect a trade
TOPIC_SYS_STATE = "sys.state"
TOPIC_HEARTBEAT = "hb."
TOPIC_ALERT = "alert"
