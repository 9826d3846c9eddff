"""Judging detectors: :mod:`.scoring` (alerts and probabilities against the truth),
:mod:`.evaluate` (replay then score) and :mod:`.train` (pre-train the cascade classifier)."""
