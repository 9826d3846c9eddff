"""Alert delivery: a durable SQLite outbox, destinations, routing, a delivery worker.

::

    Bytewax alert sink (sink.py) --enqueue--> Outbox (outbox.py, SQLite WAL)
                                                 |  claim due deliveries per destination
                                    DeliveryWorker (worker.py): rate limit, backoff
                                                 |
            destinations/: pagerduty, slack, webhook, alertmanager, telegram, discord,
                          console, jsonl (send one claim)

Routing (routing.py) decides, at enqueue time, which destinations an alert goes to.
Configuration: config.py (``[alerts]``); metrics: metrics.py; see docs/alerts.md.
"""
