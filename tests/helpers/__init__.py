"""Test helpers: data locations (data.py), checkpoint factories (checkpoints.py), assertions
(assertions.py) and generated batch corpora with their expected records (corpora.py)."""
