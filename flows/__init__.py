"""Prefect flows: thin wiring of Loopline's steps."""
