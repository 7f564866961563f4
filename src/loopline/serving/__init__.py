"""Serving: routing between champion and challenger, the prediction log, API keys."""
