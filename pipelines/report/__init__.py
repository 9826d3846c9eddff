"""The replay report: ``cascadewatch report`` and ``cascadewatch evaluate --report`` (one HTML file)."""
