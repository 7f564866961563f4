"""Monitoring: drift and live quality of a window of traffic, and when to act on them."""
