"""Run reports: per-round plots (and the HTML page)."""
