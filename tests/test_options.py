"""The pipeline's options, declared once (`PipelineOptions`): checked when made, one command-line
flag per field, the same object through the Python API and the batch manifest; each field's group
and markers, from which every way in reads what it takes; the training flags from `TrainConfig`;
a caller's model never converted in place; no patched torch classes; devices.py."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from minibert_ner import InputError, PipelineOptions, Tokenizer, load_model, pipeline
from minibert_ner.batch.job import run_options
from minibert_ner.cli import build_parser
from minibert_ner.cli.options import PIPELINE_FLAGS, pipeline_options
from minibert_ner.cli.train import TRAIN_HELP
from minibert_ner.inference.options import (
    ENTITY,
    GROUPS,
    LOADING,
    MARKERS,
    REQUEST,
    RUNNER,
    RUNTIME,
    SECRET,
    WEIGHTS,
    fields_in,
    option,
)
from minibert_ner.training.options import TrainConfig

FIELDS = [f.name for f in dataclasses.fields(PipelineOptions)]
# A value for each field other than its default, as a flag writes it and as the field holds it.
CHANGED = {
    "aggregation_strategy": (["--aggregation", "FIRST"], "first"),
    "ignore_labels": (["--ignore-labels", "O,MISC"], ("O", "MISC")),
    "word_grouping": (["--word-grouping", "word_ids"], "word_ids"),
    "stride": (["--stride", "64"], 64),
    "max_length": (["--max-length", "128"], 128),
    "dtype": (["--dtype", "bfloat16"], "bfloat16"),
    "quantize": (["--quantize", "int8"], "int8"),
    "revision": (["--revision", "v2"], "v2"),
    "device": (["--device", "cpu"], "cpu"),
    "batch_size": (["--batch-size", "4"], 4),
    "max_batch_tokens": (["--max-batch-tokens", "512"], 512),
    "compile": (["--compile"], True),
    "token": (["--token", "hf_x"], "hf_x"),
}


def test_every_option_has_one_flag_and_the_flag_sets_it():
    assert sorted(PIPELINE_FLAGS) == sorted(FIELDS) == sorted(CHANGED)
    parser = build_parser("label")
    assert pipeline_options(parser.parse_args(["text"])) == PipelineOptions()  # defaults
    for name, (argv, value) in CHANGED.items():
        options = pipeline_options(parser.parse_args([*argv, "text"]))
        assert getattr(options, name) == value, name
        assert options == PipelineOptions().replace(**{name: value})  # only that field
    no_labels = pipeline_options(parser.parse_args(["--ignore-labels", "", "text"]))
    assert no_labels.ignore_labels == ()  # '': leave nothing out
    args = parser.parse_args(["--ignore-labels", "O", "some text", "more text"])
    assert args.texts == ["some text", "more text"]  # texts after the flag stay texts


def test_commands_that_label_words_have_no_entity_flags():
    parser = build_parser("evaluate")
    with pytest.raises(SystemExit):
        parser.parse_args(["--data", "x", "--model", "m", "--aggregation", "first"])
    options = pipeline_options(parser.parse_args(["--data", "x", "--model", "m", "--stride", "9"]))
    assert options.stride == 9


def test_bad_values_and_names_are_refused_when_made():
    cases = {
        "aggregation_strategy": ("sum", "unknown aggregation_strategy 'sum'"),
        "ignore_labels": ("O", "ignore_labels must be a list of labels"),
        "batch_size": (0, "batch_size must be an integer >= 1, got 0"),
        "stride": (-1, "stride must be an integer >= 0"),
        "max_length": (1, "max_length must be an integer >= 2"),
        "dtype": ("float8", "unknown dtype 'float8'"),
        "quantize": ("int4", "unknown quantize='int4'"),
        "compile": ("yes", "compile must be True or False"),
        "word_grouping": (
            "spaces",
            "unknown word_grouping .spaces.; choose one of transformers, word_ids",
        ),
    }
    for name, (value, message) in cases.items():
        with pytest.raises(InputError, match=message):
            PipelineOptions(**{name: value})
    with pytest.raises(InputError, match="unknown pipeline option.*stirde.*the options are"):
        PipelineOptions().replace(stirde=4)
    with pytest.raises(InputError, match="unknown pipeline option"):  # before any model loads
        pipeline("no/such-model", stirde=4)


def test_equal_options_are_equal_however_given():
    a = PipelineOptions(aggregation_strategy="MAX", ignore_labels=["O"], dtype=torch.bfloat16)
    b = PipelineOptions(aggregation_strategy="max", ignore_labels=("O",), dtype="bfloat16")
    assert a == b and hash(a) == hash(b)
    # The dtype names load_model knows (one table: checkpoint.resolve_dtype), by canonical name.
    assert PipelineOptions(dtype="bf16") == b.replace(aggregation_strategy="simple")
    assert PipelineOptions(dtype="half").dtype == PipelineOptions(dtype="fp16").dtype == "float16"
    with pytest.raises(InputError, match="unsupported dtype torch.float64"):
        PipelineOptions(dtype=torch.float64)


def test_pipeline_options_as_a_dict_are_checked_as_fields_by_name(small_distilbert):
    ner = pipeline(small_distilbert, options={"aggregation_strategy": "max"})
    assert ner.options == PipelineOptions(aggregation_strategy="max")
    ner = pipeline(small_distilbert, options={"aggregation_strategy": "max"}, ignore_labels=[])
    assert ner.options == PipelineOptions(aggregation_strategy="max", ignore_labels=())
    with pytest.raises(InputError, match="frobnicate"):
        pipeline(small_distilbert, options={"frobnicate": 1})
    with pytest.raises(InputError, match="options is a list; give a PipelineOptions, a dict"):
        pipeline(small_distilbert, options=["max"])


def test_the_manifest_holds_what_changes_the_output_and_never_the_token(tmp_path):
    options = PipelineOptions(batch_size=4, device="cpu", compile=True, token="hf_secret")
    saved = run_options(tmp_path, "jsonl", "text", None, options)
    assert "hf_secret" not in str(saved)
    for runtime in ("batch_size", "max_batch_tokens", "device", "compile", "token"):
        assert runtime not in saved
    assert saved == run_options(tmp_path, "jsonl", "text", None, PipelineOptions())
    assert saved["ignore_labels"] == ["O"] and saved["aggregation_strategy"] == "simple"
    assert run_options(tmp_path, "jsonl", "text", None, options.replace(stride=64)) != saved


def test_every_training_hyper_parameter_has_a_flag():
    assert sorted(TRAIN_HELP) == sorted(f.name for f in dataclasses.fields(TrainConfig))
    parser = build_parser("train")
    base = ["--model", "m", "--train", "t", "--valid", "v", "--output", "o"]
    args = parser.parse_args([*base, "--max-grad-norm", "0.5", "--max-steps", "7", "--lr", "1e-4"])
    config = TrainConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)})
    assert (config.max_grad_norm, config.max_steps, config.lr) == (0.5, 7, 1e-4)
    assert TrainConfig(**{f.name: getattr(parser.parse_args(base), f.name)
                          for f in dataclasses.fields(TrainConfig)}) == TrainConfig()  # fmt: skip


def test_a_loaded_model_is_not_converted_in_place(small_distilbert):
    model, tokenizer = load_model(small_distilbert), Tokenizer.from_pretrained(small_distilbert)
    before = model.classifier.weight.detach().clone()
    ner = pipeline(model, tokenizer=tokenizer, dtype="bfloat16")
    assert ner.model is not model and ner.model.dtype == torch.bfloat16
    assert model.dtype == torch.float32 and torch.equal(model.classifier.weight, before)
    plain = pipeline(model, tokenizer=tokenizer)  # nothing to convert: used as it is
    assert plain.model is model


def test_loading_leaves_torch_classes_alone(small_distilbert):
    """Building a model only to receive a checkpoint's tensors must not change how other code
    (another thread) builds modules: torch's classes keep their own initialisation."""
    originals = {cls: cls.reset_parameters for cls in (nn.Linear, nn.Embedding, nn.LayerNorm)}
    load_model(small_distilbert)
    assert {cls: cls.reset_parameters for cls in originals} == originals
    from minibert_ner.model import embedding

    torch.manual_seed(0)
    theirs = nn.Embedding(50, 8, padding_idx=0)
    torch.manual_seed(0)
    ours = embedding(50, 8, padding_idx=0)  # torch's own initialisation, bit for bit
    assert torch.equal(ours.weight, theirs.weight) and ours.padding_idx == 0
    with torch.device("meta"):
        assert embedding(50, 8).weight.is_meta  # and nothing to initialise on meta


# --- option groups: each field's group and markers, and what is derived from them --------------

GROUPS_OF = {  # field -> its group, then its markers
    "aggregation_strategy": {ENTITY, REQUEST},
    "ignore_labels": {ENTITY, REQUEST},
    "word_grouping": {ENTITY},
    "stride": {RUNNER, REQUEST},
    "max_length": {RUNNER},
    "dtype": {LOADING, WEIGHTS},
    "quantize": {LOADING},
    "revision": {LOADING, WEIGHTS},
    "device": {LOADING, WEIGHTS, RUNTIME},
    "batch_size": {RUNNER, RUNTIME},
    "max_batch_tokens": {RUNNER, RUNTIME},
    "compile": {LOADING, RUNTIME},
    "token": {LOADING, WEIGHTS, SECRET},
}


def test_every_field_is_in_one_group_with_its_markers():
    assert sorted(GROUPS_OF) == sorted(FIELDS)
    for f in dataclasses.fields(PipelineOptions):
        assert f.metadata["names"] == GROUPS_OF[f.name], f.name
        assert len(f.metadata["names"] & set(GROUPS)) == 1, f.name
    for name in (*GROUPS, *MARKERS):
        assert fields_in(name) == tuple(f for f in FIELDS if name in GROUPS_OF[f]), name


def test_what_each_way_in_takes_is_read_from_the_groups():
    """The call-time options, a request's parameters and the command line's field sets and --help
    sections all come from the fields' metadata."""
    from minibert_ner.cli.options import ENTITY_FIELDS, LOADING_FIELDS, SECTIONS, WORD_FIELDS
    from minibert_ner.inference.pipeline import CALL_OPTIONS, RUNNER_OPTIONS
    from minibert_ner.serve.requests import PARAMETERS

    def having(*names: str) -> set[str]:
        return {field for field, groups in GROUPS_OF.items() if groups & set(names)}

    assert set(CALL_OPTIONS) == having(ENTITY, RUNNER) and set(RUNNER_OPTIONS) == having(RUNNER)
    assert PARAMETERS == ("aggregation_strategy", "ignore_labels", "stride")
    assert set(PARAMETERS) == having(REQUEST) and set(PARAMETERS) <= set(CALL_OPTIONS)
    assert set(ENTITY_FIELDS) == having(ENTITY) and set(WORD_FIELDS) == set(FIELDS) - having(ENTITY)
    assert set(LOADING_FIELDS) == {"revision", "token", "device", "dtype"} == having(WEIGHTS)
    saved = PipelineOptions().output_fields()
    assert set(saved) == set(FIELDS) - having(RUNTIME, SECRET)
    assert set(PipelineOptions(token="hf_x").as_json()) == set(FIELDS) - {"token"}
    for command in ("label", "serve", "batch", "evaluate"):  # one --help section per group
        parser = build_parser(command)
        sections = {g.title: {a.dest for a in g._group_actions} for g in parser._action_groups}
        for group, title in SECTIONS.items():
            wanted = having(group) - (having(ENTITY) if command == "evaluate" else set())
            assert sections.get(title, set()) == wanted, (command, group)


def test_a_new_field_takes_its_place_from_its_group():
    @dataclasses.dataclass(frozen=True)
    class More(PipelineOptions):
        colour: str = option("red", ENTITY, REQUEST)

    assert fields_in(ENTITY, More)[-1] == fields_in(REQUEST, More)[-1] == "colour"
    assert "colour" not in fields_in(RUNNER, More) + fields_in(LOADING, More)
    with pytest.raises(AssertionError):
        option(0, "colours")  # a group that does not exist is a bug


# --- devices: one module, torch-free until used ----------------------------------------------


def test_devices_one_place_old_names_kept():
    from minibert_ner import checkpoint, devices
    from minibert_ner.inference import options, pipeline

    assert pipeline.resolve_device is devices.resolve_device
    assert checkpoint.resolve_dtype is devices.resolve_dtype
    assert options.canonical_device is devices.canonical_device
    assert devices.canonical_device(-1) == "cpu" and devices.canonical_device("0") == "cuda:0"
    assert devices.canonical_device(torch.device("cpu")) == "cpu"
    assert devices.canonical_device(None) is None
    with pytest.raises(InputError, match="device -2: use -1 for the CPU"):
        devices.canonical_device(-2)
    gpu = torch.cuda.is_available()
    assert devices.resolve_device(None) == torch.device("cuda" if gpu else "cpu")
    assert devices.resolve_device(-1) == torch.device("cpu")
    with pytest.raises(InputError, match="device 'meta' cannot run a model here"):
        devices.resolve_device("meta")
    with pytest.raises(InputError, match="unknown device 'gpu'"):
        devices.resolve_device("gpu")
    assert devices.resolve_dtype("bf16") is torch.bfloat16 and devices.resolve_dtype(None) is None
    with pytest.raises(InputError, match="unknown dtype 'float8'"):
        devices.resolve_dtype("float8")


def test_device_none_means_the_cpu_for_load_model(small_distilbert):
    """load_model(device=None): the CPU, whatever GPU there is (devices.py's docstring)."""
    assert load_model(small_distilbert).device == torch.device("cpu")


def test_devices_and_options_import_no_torch():
    import subprocess
    import sys

    code = (
        "import sys, minibert_ner.devices, minibert_ner.inference.options; "
        "assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
