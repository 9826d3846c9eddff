"""One module per venue, shaped alike; ``registry.py`` lists them (the one list of venues)."""
