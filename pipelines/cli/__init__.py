"""The ``cascadewatch`` command line: :mod:`.main` (the entry point and replay, demo, evaluate,
train), :mod:`.live` (run, record), :mod:`.alerts` (alerts, tail), :mod:`.simulate`,
:mod:`.display` (rich tables) and :mod:`.tail` (the live terminal view)."""
