"""`minibert-ner serve`: NER over HTTP, as the Hugging Face Inference API answers it.

requests.py checks a request's body; batcher.py shares forward passes between concurrent
requests (each answer as `ner(text)` alone); metrics.py counts; app.py is the Starlette
application (routes, limits, api key, errors); server.py binds, runs uvicorn and drains on
SIGTERM. Needs the serve extra: pip install 'minibert-ner[serve]'.
"""

from ..errors import MissingExtraError

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as e:
    raise MissingExtraError(
        f"serving needs the serve extra ({e.name} is missing): pip install 'minibert-ner[serve]'"
    ) from e

from .app import ServeLimits, create_app
from .server import serve

__all__ = ["ServeLimits", "create_app", "serve"]
