"""Experiment records: every candidate of every run, with the diagnostics that explain it."""
