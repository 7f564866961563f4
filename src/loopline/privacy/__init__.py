"""Personal data by design: pseudonymous keys from ingestion on, and the keys that make them.

The entity id a user supplies never goes past ingestion: every store after it holds a
keyed pseudonym (:mod:`loopline.privacy.pseudonyms`), made with a secret that lives in the
state folder or the environment (:mod:`loopline.privacy.secrets`), never in git or a log.
Pseudonymized data is still personal data (docs/privacy.md).
"""
