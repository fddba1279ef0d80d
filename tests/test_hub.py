"""Loading by hub id, from a Hugging Face cache that this test lays out itself, with HF_HUB_OFFLINE=1.

The cache layout is huggingface_hub's own: models--OWNER--NAME/{blobs, refs, snapshots/COMMIT}.
Each check runs in a fresh interpreter because huggingface_hub reads HF_HUB_OFFLINE at import.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minibert_ner import load_model

from .helpers.checkpoints import make_reference_checkpoint

REPO_ID = "dslim/distilbert-NER"


def add_snapshot(cache: Path, repo_id: str, src: Path, commit: str, refs: list[str]) -> None:
    """Put the files of `src` into the cache as snapshot `commit`, pointed to by `refs`."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    snapshot.mkdir(parents=True)
    for file in src.iterdir():
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    for ref in refs:
        (repo / "refs" / ref).parent.mkdir(parents=True, exist_ok=True)
        (repo / "refs" / ref).write_text(commit)


def run_offline(code: str, cache: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(cache),
        "HF_HOME": str(cache.parent),
    }
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def cache(tmp_path_factory, minilm) -> Path:
    root = tmp_path_factory.mktemp("hf")
    v1 = make_reference_checkpoint(root / "v1", "distilbert", seed=1, tokenizer_from=minilm)
    v2 = make_reference_checkpoint(root / "v2", "distilbert", seed=2, tokenizer_from=minilm)
    add_snapshot(root / "hub", REPO_ID, v1, "1" * 40, ["v1.0"])
    add_snapshot(root / "hub", REPO_ID, v2, "2" * 40, ["main"])
    return root / "hub"


def test_load_by_id_from_cache_offline(cache: Path) -> None:
    result = run_offline(
        f"""
        import torch
        from minibert_ner import Tokenizer, load_model
        ids = torch.tensor([[101, 2000, 3000, 102]])
        main = load_model("{REPO_ID}")
        tag = load_model("{REPO_ID}", revision="v1.0")
        commit = load_model("{REPO_ID}", revision="{"1" * 40}")
        tok = Tokenizer.from_pretrained("{REPO_ID}")
        assert tok.encode("Berlin").tokens == ["[CLS]", "berlin", "[SEP]"]
        assert torch.equal(tag(ids).logits, commit(ids).logits)
        assert not torch.equal(main(ids).logits, tag(ids).logits)
        print("OK", main.id2label[1])
        """,
        cache,
    )
    assert result.returncode == 0, result.stderr
    assert "OK B-PER" in result.stdout


def test_unknown_id_offline_is_a_clear_error(cache: Path) -> None:
    result = run_offline(
        """
        from minibert_ner import ModelNotFoundError, load_model
        for name, kwargs in [("someone/missing-model", {}), ("dslim/distilbert-NER", {"revision": "v9"})]:
            try:
                load_model(name, **kwargs)
            except ModelNotFoundError as e:
                print("ERR", e)
        """,
        cache,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    assert all(
        "not in the local Hugging Face cache" in line and "local folder" in line for line in lines
    )
    assert "someone/missing-model" in lines[0] and "'v9'" in lines[1]


def test_not_a_folder_nor_an_id(tmp_path) -> None:
    from minibert_ner import ModelNotFoundError

    with pytest.raises(
        ModelNotFoundError, match="no folder .* exists, and it is not a hub model id"
    ):
        load_model(str(tmp_path / "nope" / "deeper"))
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ModelNotFoundError, match="is a file"):
        load_model(tmp_path / "file.txt")


def test_roberta_with_vocab_json_and_merges_by_id_offline(tmp_path, bpe_tokenizer) -> None:
    """A RoBERTa NER model as older hub repos ship it (no tokenizer.json, no tokenizer_config:
    config.json's model_type names the tokenizer), labelled by hub id from the cache."""
    folder = make_reference_checkpoint(tmp_path / "m", "roberta", tokenizer_from=bpe_tokenizer)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    add_snapshot(tmp_path / "hub", "Jean-Baptiste/roberta-ner", folder, "3" * 40, ["main"])
    result = run_offline(
        """
        import minibert_ner
        ner = minibert_ner.pipeline("Jean-Baptiste/roberta-ner", ignore_labels=[])
        tokens = ner.tokenizer.encode("Berlin and Paris").tokens
        assert tokens[0] == "<s>" and tokens[-1] == "</s>" and "Ġand" in tokens, tokens
        print("OK", ner.window_size, ner.model.config.model_type, len(ner("Berlin and Paris")))
        """,
        tmp_path / "hub",
    )
    assert result.returncode == 0, result.stderr
    assert "OK 512 roberta" in result.stdout
