"""The Python API takes what transformers users write: `pipeline(task, model=..., device=...)`,
call-time options, and config.json files whose mistakes are reported, not tracebacks."""

from __future__ import annotations

import json
import re

import pytest
import torch
import transformers
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert_ner
from minibert_ner import ConfigError, InputError, ModelConfig, PipelineOptions, load_model
from minibert_ner.config import FIELD_NAMES, FIELD_TYPES
from minibert_ner.inference.pipeline import CALL_OPTIONS, TASKS

from .helpers.checkpoints import CALIBRATION_TEXTS


@pytest.fixture(scope="module")
def ner(ner_model_dir):
    return minibert_ner.pipeline(ner_model_dir)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: minibert_ner.pipeline("ner", model=m),
        lambda m: minibert_ner.pipeline("token-classification", model=m, device=-1),
        lambda m: minibert_ner.pipeline(task="ner", model=m, device="cpu"),
        lambda m: minibert_ner.pipeline(model=m, torch_dtype="float32"),
        lambda m: minibert_ner.pipeline(m),
        lambda m: minibert_ner.pipeline(str(m), device=torch.device("cpu")),
    ],
)
def test_transformers_style_calls_make_the_same_pipeline(call, ner, ner_model_dir):
    made = call(ner_model_dir)
    assert made.options.device in (None, "cpu") and made.model.device.type == "cpu"
    assert made(CALIBRATION_TEXTS) == ner(CALIBRATION_TEXTS)


def test_integer_devices_read_as_transformers_reads_them():
    assert PipelineOptions(device=-1).device == "cpu"
    assert PipelineOptions(device=0).device == "cuda:0"
    assert PipelineOptions(device=3).device == "cuda:3"
    assert PipelineOptions(device="1").device == "cuda:1"  # a command line's "--device 1"
    with pytest.raises(InputError, match="use -1 for the CPU"):
        PipelineOptions(device=-2)
    with pytest.raises(InputError, match="device must be"):
        PipelineOptions(device=1.5)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without GPU")
def test_a_gpu_index_without_a_gpu_says_so(ner_model_dir):
    with pytest.raises(InputError, match="device 'cuda:0': PyTorch sees no CUDA GPU"):
        minibert_ner.pipeline("ner", model=ner_model_dir, device=0)


@pytest.mark.parametrize("device", ["meta", "tpu", "cuda:x"])
def test_devices_that_cannot_run_a_model_are_refused(device, ner_model_dir):
    with pytest.raises(InputError, match="device"):
        minibert_ner.pipeline(ner_model_dir, device=device)


def test_tasks_other_than_ner_and_the_model_twice_are_refused(ner_model_dir):
    with pytest.raises(InputError, match="task 'summarization' is not one minibert-ner runs"):
        minibert_ner.pipeline("summarization", model=ner_model_dir)
    with pytest.raises(InputError, match="task 'text-classification'"):
        minibert_ner.pipeline("text-classification")
    with pytest.raises(InputError, match="got the model twice"):
        minibert_ner.pipeline(ner_model_dir, model=ner_model_dir)
    with pytest.raises(InputError, match="dtype or torch_dtype, not both"):
        minibert_ner.pipeline(ner_model_dir, dtype="float32", torch_dtype="float32")
    assert set(TASKS) == {"ner", "token-classification"}


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    strategy=st.sampled_from(["none", "simple", "first", "average", "max"]),
    ignore=st.sampled_from([None, [], ["O"], ["O", "B-PER", "I-PER", "PER"]]),
    stride=st.integers(1, 6),
    max_length=st.sampled_from([None, 8, 12]),
    batch_size=st.integers(1, 4),
    max_batch_tokens=st.sampled_from([16, 64, 16384]),
    grouping=st.sampled_from([None, "transformers", "word_ids"]),
)
def test_call_time_options_equal_a_pipeline_made_with_them(
    ner, ner_model_dir, strategy, ignore, stride, max_length, batch_size, max_batch_tokens, grouping
):
    overrides = {
        "aggregation_strategy": strategy, "ignore_labels": ignore, "stride": stride,
        "word_grouping": grouping,
        "max_length": max_length, "batch_size": batch_size, "max_batch_tokens": max_batch_tokens,
    }  # fmt: skip
    assert set(overrides) == set(CALL_OPTIONS)
    texts = [*CALIBRATION_TEXTS, "Berlin " * 30]  # one text longer than a small window
    got = ner(texts, **overrides)
    made = minibert_ner.NERPipeline(
        ner.model, ner.tokenizer, **{k: v for k, v in overrides.items() if v is not None}
    )
    assert got == made(texts)
    assert ner.options == PipelineOptions()  # the call changed nothing for the next one


def test_options_that_decide_loading_are_not_call_options(ner):
    with pytest.raises(InputError, match="device decide how the model loads"):
        ner("Berlin", device="cpu")
    with pytest.raises(InputError, match="colour are unknown"):
        ner("Berlin", colour="red")
    with pytest.raises(InputError, match="unknown aggregation_strategy"):
        ner("Berlin", aggregation_strategy="best")


# --- config.json ---------------------------------------------------------------------------

WRONG_VALUES = {
    int: st.one_of(st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=2),
                   st.floats(allow_nan=False).filter(lambda x: not float(x).is_integer())),
    float: st.one_of(st.text(max_size=5), st.booleans(), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1)),
    str: st.one_of(st.integers(), st.booleans(), st.lists(st.text(max_size=2), max_size=2)),
    bool: st.one_of(st.integers(), st.text(max_size=5)),
}  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_config_value_of_the_wrong_json_type_is_named(data):
    family = data.draw(st.sampled_from(sorted(FIELD_NAMES)))
    ours, theirs = data.draw(
        st.sampled_from(sorted((o, t) for o, t in FIELD_NAMES[family].items() if o in FIELD_TYPES))
    )
    value = data.draw(WRONG_VALUES[FIELD_TYPES[ours]])
    with pytest.raises(ConfigError, match=f"config.json: {theirs} is "):
        ModelConfig.from_dict({"model_type": family, theirs: value})


@pytest.mark.parametrize(
    "id2label, message",
    [
        (["O", "B-PER"], "id2label is an array"),
        ("O", "id2label is a string"),
        ({"zero": "O"}, "id2label has the key 'zero'"),
        ({"0": ["O"]}, "id2label['0'] is ['O'] (an array)"),
        ({"0": "O", "2": "B-PER"}, "id2label must number labels 0..n-1"),
    ],
)
def test_bad_id2label_is_named(id2label, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        ModelConfig.from_dict({"model_type": "bert", "id2label": id2label})


def test_num_labels_without_id2label_reads_as_transformers_reads_it(tmp_path):
    raw = {"model_type": "bert", "num_labels": 5}
    assert ModelConfig.from_dict(raw).id2label == {i: f"LABEL_{i}" for i in range(5)}
    config = transformers.BertConfig(
        vocab_size=99, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=5,
    )  # fmt: skip
    model = transformers.BertForTokenClassification(config)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text("utf-8"))
    saved.pop("id2label", None), saved.pop("label2id", None)
    saved["num_labels"] = 5
    (tmp_path / "config.json").write_text(json.dumps(saved), "utf-8")
    reference = transformers.AutoConfig.from_pretrained(tmp_path)
    ours = load_model(tmp_path)
    assert ours.id2label == reference.id2label
    with pytest.raises(ConfigError, match="num_labels is -1"):
        ModelConfig.from_dict({"model_type": "bert", "num_labels": -1})
