"""Find a model's files: a local folder, or a hub id fetched into (or read from) the Hugging Face cache.

Only the files we read are downloaded (never `pytorch_model.bin` or other frameworks' weights).
`huggingface_hub` provides the cache, revisions, tokens and `HF_HUB_OFFLINE`.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import InputError, ModelNotFoundError

__all__ = [
    "TOKENIZER_FILES",
    "WEIGHT_FILES",
    "resolve_folder",
]

WEIGHT_FILES = [
    "config.json",
    "gliner_config.json",  # so that a GLiNER model is recognised (and sent to GLiNER)
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*.safetensors",
]
TOKENIZER_FILES = [
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",  # RoBERTa checkpoints without tokenizer.json: vocab.json + merges.txt
    "merges.txt",
    "config.json",  # its model_type names the tokenizer class when tokenizer_config.json does not
    "special_tokens_map.json",
    "added_tokens.json",  # with spm.model: tokens added to an older checkpoint
    "spm.model",  # DeBERTa-v2/v3 checkpoints without tokenizer.json
]

# "name" or "owner/name": letters, digits, '-', '_', '.'; what the hub accepts as a repo id.
_REPO_ID = re.compile(r"^(?:[\w.-]+/)?[\w.-]+$")


def resolve_folder(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    files: list[str] | None = None,
) -> Path:
    """The local folder holding a model: `name_or_path` itself if it is a folder, else the cached
    hub snapshot of that repo id (downloading `files`, glob patterns, when online and missing).
    A revision with a local folder is an InputError: a folder has one version, and ignoring the
    revision would label with a model the caller did not ask for."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if revision:
            raise InputError(
                f"revision {revision!r} picks a version of a hub model, but {path} is a local "
                "folder (one version); drop --revision, or give the hub id"
            )
        return path
    if path.exists():
        raise ModelNotFoundError(
            f"{path} is a file; pass the folder that holds config.json and model.safetensors"
        )
    name = str(name_or_path)
    if not _REPO_ID.match(name) or name.startswith((".", "/", "~")):
        raise ModelNotFoundError(
            f"no folder {name!r} exists, and it is not a hub model id (such as "
            "'dslim/distilbert-NER'); check the path"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    at = f" at revision {revision!r}" if revision else ""
    try:
        folder = snapshot_download(
            repo_id=name,
            revision=revision,
            token=token,
            allow_patterns=files or WEIGHT_FILES + TOKENIZER_FILES,
        )
    except GatedRepoError as e:
        raise ModelNotFoundError(
            f"model {name!r} is gated: accept its terms on the hub and pass a token "
            "(token=... or the HF_TOKEN environment variable)"
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(
            f"model {name!r} was not found on the hub (or is private: pass a token); "
            "check the id, or pass a local folder"
        ) from e
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"model {name!r} has no revision {revision!r}") from e
    except LocalEntryNotFoundError as e:
        raise ModelNotFoundError(
            f"model {name!r}{at} is not in the local Hugging Face cache and the hub cannot be "
            "reached (offline, or HF_HUB_OFFLINE=1); download it once while online, "
            "or pass a local folder that holds config.json and model.safetensors"
        ) from e
    except (HfHubHTTPError, OSError) as e:
        raise ModelNotFoundError(f"could not fetch model {name!r}{at} from the hub: {e}") from e
    return Path(folder)
