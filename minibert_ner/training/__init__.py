"""Training and evaluation on CoNLL-2003: the reader (conll.py), seqeval-equal metrics
(metrics.py) and fine-tuning with the BERT paper's recipe (train.py)."""

__all__: list[str] = []
