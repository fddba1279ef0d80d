"""A label request as the Hugging Face Inference API sends it, checked at the server's edge.

    {"inputs": "one text" | ["text", ...],
     "parameters": {"aggregation_strategy": "simple", "ignore_labels": ["O"], "stride": 64}}

`huggingface_hub.InferenceClient.token_classification` sends exactly this (parameters it was
not given are left out). A server running a GLiNER model takes GLiNER's parameters instead:

    {"inputs": ..., "parameters": {"labels": ["person", "company"], "threshold": 0.5,
                                   "flat_ner": true, "multi_label": false}}

each defaulting to the server's (`--labels`, `--threshold`, `--nested`, `--multi-label`); a
request must name labels when the server has none. Each refusal is a `RequestError` carrying its HTTP status:
1. a body that is not JSON (or not UTF-8): 400;
2. a body that is not an object, a key other than inputs/parameters, inputs that are not one
   non-empty str or a non-empty list of them, a text that is not valid Unicode, an unknown
   parameter or a bad parameter value (as `PipelineOptions` checks it): 422;
3. more texts than the server's `max_inputs`: 413 (the body's size is checked before parsing).
Nothing in a request names a file or a model: the server labels with the one model it loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields

from ..errors import InputError
from ..gliner.pipeline import GLiNEROptions
from ..inference.options import REQUEST, PipelineOptions, fields_in

__all__ = ["GLINER_PARAMETERS", "PARAMETERS", "LabelRequest", "RequestError", "parse_request"]

PARAMETERS = fields_in(REQUEST)  # the options a request may change (marked in PipelineOptions)
GLINER_PARAMETERS = tuple(f.name for f in fields(GLiNEROptions))  # what a GLiNER server's take


class RequestError(InputError):
    """A request the server refuses: its HTTP status and a short error type go to the client
    with the message, as {"error": message, "error_type": error_type}."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type


def invalid(message: str) -> RequestError:
    return RequestError(422, "invalid_request", message)


@dataclass(frozen=True)
class LabelRequest:
    texts: list[str]
    single: bool  # "inputs" was one str: the answer is one list of entities, not a list of them
    # the server's options with the request's parameters applied
    options: PipelineOptions | GLiNEROptions


def parse_request(
    body: bytes, defaults: PipelineOptions | GLiNEROptions, max_inputs: int
) -> LabelRequest:
    """The request in `body`, checked; `defaults` are the server's options: a token
    classifier's pipeline options, or a GLiNER model's."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and UnicodeDecodeError
        raise RequestError(400, "bad_json", f"the body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise invalid(f'the body must be a JSON object {{"inputs": ...}}, got {kind(data)}')
    unknown = sorted(set(data) - {"inputs", "parameters"})
    if unknown:
        raise invalid(f"unknown key(s) {', '.join(unknown)}; a request has inputs and parameters")
    if "inputs" not in data:
        raise invalid('no "inputs": send {"inputs": "a text"} or {"inputs": ["a text", ...]}')
    inputs = data["inputs"]
    single = isinstance(inputs, str)
    texts = [inputs] if single else inputs
    if not isinstance(texts, list):
        raise invalid(f'"inputs" must be a str or a list of str, got {kind(inputs)}')
    if not texts:
        raise invalid('"inputs" is an empty list; send at least one text')
    if len(texts) > max_inputs:
        raise RequestError(
            413,
            "too_many_inputs",
            f"{len(texts)} texts in one request; this server takes at most {max_inputs}: "
            "split them over several requests",
        )
    for i, text in enumerate(texts):
        where = '"inputs"' if single else f'"inputs"[{i}]'
        if not isinstance(text, str):
            raise invalid(f"{where} is {kind(text)}, not a str")
        if not text:
            raise invalid(f"{where} is an empty text; send text to label")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise invalid(f"{where} is not valid Unicode (a lone surrogate escape)") from None
    parameters = data.get("parameters")
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, dict):
        raise invalid(f'"parameters" must be an object, got {kind(parameters)}')
    gliner = isinstance(defaults, GLiNEROptions)
    allowed, other = (GLINER_PARAMETERS, PARAMETERS) if gliner else (PARAMETERS, GLINER_PARAMETERS)
    unknown = sorted(set(parameters) - set(allowed))
    misplaced = [name for name in unknown if name in other]
    if misplaced:
        kinds = ("token-classification", "GLiNER") if gliner else ("GLiNER", "token-classification")
        raise invalid(
            f"parameter(s) {', '.join(misplaced)} are for {kinds[0]} models; this server runs a "
            f"{kinds[1]} model: use {', '.join(allowed)}"
        )
    if unknown:
        raise invalid(f"unknown parameter(s) {', '.join(unknown)}; use {', '.join(allowed)}")
    given = {name: value for name, value in parameters.items() if value is not None}
    try:
        options = defaults.replace(**given)
    except InputError as e:
        raise invalid(str(e)) from None
    if isinstance(options, GLiNEROptions) and options.labels is None:
        raise invalid(
            "this server has no default labels (--labels): name the entity types in "
            '"parameters": {"labels": ["person", "company"]}'
        )
    return LabelRequest(texts, single, options)


def kind(value: object) -> str:
    """A JSON value's type in JSON's words, for messages."""
    names = {dict: "an object", list: "a list", str: "a str", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")
