"""``make bench``: :mod:`.replay` (replay throughput, memory, scale-out) and :mod:`.live`
(one live source partition against a local websocket server)."""
