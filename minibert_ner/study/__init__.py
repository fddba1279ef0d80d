"""The study kit for model internals: the logit lens and per-layer inspection (lens.py),
interventions on heads, layers and activations (interventions.py), and figures (figures.py,
with the `plot` extra)."""

__all__: list[str] = []
