"""Alerts: the ``[alerts]`` configuration and its secret, the policy (dedup, budget, digest,
recovery), the mail's composition, the SMTP mailer and the desk the watchdog runs.
"""
