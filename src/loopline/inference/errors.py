"""The one error of the compiled path: a fitted pipeline it cannot reproduce exactly."""


class NotCompilable(Exception):
    """The pipeline has a step with no compiled path; the message says which and why."""
