"""`python -m minibert_ner ...`: the `minibert-ner` command."""

import sys

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
