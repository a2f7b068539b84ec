"""The report's JSON Schema, and a validator for the subset it uses.

``explain_attn/report/report.schema.json`` (shipped with the package)
documents ``report.json``. The validator here implements exactly the part
of JSON Schema (draft 2020-12) that file uses, so that no dependency is
needed: ``type`` (a name or a list of names; ``integer`` excludes booleans
and floats, ``number`` excludes booleans), ``enum``, ``required``,
``properties``, ``additionalProperties`` (a boolean or a schema),
``items`` (one schema for every item), ``minimum``, ``maximum`` and local
``$ref`` (``#/$defs/name``). Any other keyword in a schema given to
`validate` raises `ValueError`, so the schema cannot silently outgrow it.
"""

import functools
import json
import math
from pathlib import Path

__all__ = [
    "SCHEMA_PATH",
    "SEGMENTATION_SCHEMA_PATH",
    "check_report",
    "report_schema",
    "undeclared",
    "validate",
]

SCHEMA_PATH = Path(__file__).with_name("report.schema.json")
SEGMENTATION_SCHEMA_PATH = Path(__file__).with_name("segmentation.schema.json")

_TYPES = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: (
        isinstance(v, int | float)
        and not isinstance(v, bool)
        and math.isfinite(v)
    ),
}
_ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "version"}
_KEYWORDS = {
    "type",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minimum",
    "maximum",
    "$ref",
}


@functools.cache
def report_schema(task="classification"):
    """The shipped schema of ``report.json``, as a dict: a classification
    report's, or (``task="segmentation"``) a segmentation report's."""
    path = SEGMENTATION_SCHEMA_PATH if task == "segmentation" else SCHEMA_PATH
    return json.loads(path.read_text(encoding="utf-8"))


def _resolve(reference, root):
    if not reference.startswith("#/$defs/"):
        raise ValueError(
            f"Only local '#/$defs/...' references are supported. Received: "
            f"$ref={reference!r}"
        )
    return root["$defs"][reference.removeprefix("#/$defs/")]


def _check_type(value, schema, where):
    names = schema["type"]
    names = [names] if isinstance(names, str) else names
    if not any(_TYPES[name](value) for name in names):
        return [f"{where}: expected {' or '.join(names)}, got {value!r:.60}"]
    return []


def _check_object(value, schema, root, where):
    errors = [
        f"{where}: missing key {key!r}"
        for key in schema.get("required", [])
        if key not in value
    ]
    properties = schema.get("properties", {})
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            errors += _errors(item, properties[key], root, f"{where}.{key}")
        elif extra is False:
            errors.append(f"{where}: unexpected key {key!r}")
        elif isinstance(extra, dict):
            errors += _errors(item, extra, root, f"{where}.{key}")
    return errors


def _errors(value, schema, root, where):
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    if unknown:
        raise ValueError(
            f"The schema uses keywords this validator does not implement: "
            f"{sorted(unknown)} at {where}."
        )
    if "$ref" in schema:
        return _errors(value, _resolve(schema["$ref"], root), root, where)
    if "type" in schema:
        errors = _check_type(value, schema, where)
        if errors:
            return errors
    if "enum" in schema and value not in schema["enum"]:
        return [f"{where}: {value!r:.60} is not one of {schema['enum']}"]
    errors = []
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} is below {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} is above {schema['maximum']}")
    if isinstance(value, dict):
        errors += _check_object(value, schema, root, where)
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            errors += _errors(item, schema["items"], root, f"{where}[{index}]")
    return errors


def validate(document, schema=None):
    """The ways ``document`` breaks ``schema`` (the report's by default).

    Returns:
        A list of messages ``"$.path: problem"``; empty when it is valid.
    """
    schema = report_schema() if schema is None else schema
    return _errors(document, schema, schema, "$")


def undeclared(document, schema=None):
    """The paths of the keys of ``document`` that ``schema`` (the
    report's by default) does not declare: not in ``properties`` and not
    covered by an ``additionalProperties`` schema. An object schema that
    says nothing about a key lets `validate` pass it, so this is how a
    section the schema forgot is found.

    Returns:
        A list of ``"$.path.key"``; empty when every key is declared.
    """
    schema = report_schema() if schema is None else schema
    return list(_undeclared(document, schema, schema, "$"))


def _undeclared(value, schema, root, where):
    while "$ref" in schema:
        schema = _resolve(schema["$ref"], root)
    if isinstance(value, dict):
        declared = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in declared:
                yield from _undeclared(
                    item, declared[key], root, f"{where}.{key}"
                )
            elif isinstance(extra, dict):
                yield from _undeclared(item, extra, root, f"{where}.{key}")
            else:  # No schema for it (``false`` refuses it too).
                yield f"{where}.{key}"
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _undeclared(
                item, schema["items"], root, f"{where}[{index}]"
            )


def check_report(document, name="report"):
    """Raises `ValueError` naming the first problems of an invalid report."""
    if isinstance(document, dict) and document.get("task") == "segmentation":
        raise ValueError(
            f"{name} is a segmentation report, and `explain-attn compare` "
            "does not support segmentation reports yet. Compare "
            "classification reports."
        )
    if not isinstance(document, dict) or "format" not in document:
        raise ValueError(
            f"{name} is not an explain-attn report.json (no 'format' key). "
            "Give the .json written beside a report's .html."
        )
    errors = validate(document)
    if errors:
        shown = "; ".join(errors[:3])
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise ValueError(
            f"{name} does not match the report schema: {shown}{more}. "
            "Give a report.json written by explain-attn."
        )
