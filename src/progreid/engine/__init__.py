"""Feature extraction, training rounds and the progressive loop."""
