"""`minibert-ner serve`: NER over HTTP, as the Hugging Face Inference API answers it.

requests.py checks a request's body; batcher.py shares forward passes between concurrent
requests (each answer as `ner(text)` alone); metrics.py counts; limits.py holds what the server
accepts (`ServeLimits`); app.py is the Starlette application (routes, limits, api key, errors);
server.py binds, runs uvicorn and drains on SIGTERM. The application and the server need the
serve extra (pip install 'minibert-ner[serve]'); the names below load on first use, so that
`ServeLimits` (the serve command's defaults) is there without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MissingExtraError
from ..lazy import lazy_exports

_EXPORTS = {"ServeLimits": "limits", "create_app": "app", "serve": "server"}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .app import create_app
    from .limits import ServeLimits
    from .server import serve

_load, __dir__ = lazy_exports(__name__, _EXPORTS)


def __getattr__(name: str) -> Any:
    if name in ("create_app", "serve"):
        try:
            import httptools  # noqa: F401
            import starlette  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError as e:
            raise MissingExtraError(
                f"serving needs the serve extra ({e.name} is missing): "
                "pip install 'minibert-ner[serve]'"
            ) from e
    return _load(name)
