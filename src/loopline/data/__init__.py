"""Datasets: the built-in generator, the batch contract, and accepting versions into DVC."""
