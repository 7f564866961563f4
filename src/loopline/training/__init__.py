"""Training: candidate models, time-based holdout, selection, and the model card."""
