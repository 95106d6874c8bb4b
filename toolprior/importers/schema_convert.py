"""Benchmark function docs -> the project's ToolSpec with JSON-schema parameters.

BFCL and When2Call describe parameters with Python-flavoured type names ("dict", "float", "tuple", "any").
They are converted recursively, at schema positions only (a property that happens to be called "type" is a
name, not a type): dict -> object, float -> number, tuple -> array, any -> no type at all. Everything else in a
schema (description, enum, default, required, BFCL's own "optional" flag, ...) is kept as it is.
"""

from __future__ import annotations

from typing import Any

from toolprior.cases import ToolSpec
from toolprior.importers.common import RecordError, kind, text

# None means "any type": the "type" key is dropped.
TYPE_NAMES: dict[str, str | None] = {
    "dict": "object",
    "object": "object",
    "float": "number",
    "double": "number",
    "number": "number",
    "integer": "integer",
    "int": "integer",
    "string": "string",
    "str": "string",
    "boolean": "boolean",
    "bool": "boolean",
    "array": "array",
    "list": "array",
    "tuple": "array",
    "null": "null",
    "any": None,
}

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions")  # name -> schema
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")  # [schema, ...]
_SCHEMA_ONES = ("additionalProperties", "not", "contains", "additionalItems")  # schema (or a boolean)


def convert_type(value: Any, field: str) -> str | list[str] | None:
    """One schema's "type": a name or a list of names; None when any type is allowed."""
    if isinstance(value, str):
        if value not in TYPE_NAMES:
            raise RecordError(field, f"unknown type {value!r}; known: {', '.join(TYPE_NAMES)}")
        return TYPE_NAMES[value]
    if isinstance(value, list) and value:
        out: list[str] = []
        for i, item in enumerate(value):
            converted = convert_type(item, f"{field}[{i}]")
            if converted is None:  # "any" among the alternatives: anything goes
                return None
            assert isinstance(converted, str)
            if converted not in out:
                out.append(converted)
        return out[0] if len(out) == 1 else out
    raise RecordError(field, f"expected a type name or a non-empty array of them, got {kind(value)}")


def convert_schema(node: Any, field: str) -> dict[str, Any]:
    """A JSON-schema node with every type name converted, recursively; other keys are kept as they are."""
    if not isinstance(node, dict):
        raise RecordError(field, f"expected a schema object, got {kind(node)}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        sub = f"{field}.{key}"
        if key == "type":
            converted = convert_type(value, sub)
            if converted is not None:
                out[key] = converted
        elif key in _SCHEMA_MAPS:
            if not isinstance(value, dict):
                raise RecordError(sub, f"expected an object of schemas, got {kind(value)}")
            out[key] = {name: convert_schema(schema, f"{sub}.{name}") for name, schema in value.items()}
        elif key in _SCHEMA_LISTS:
            if not isinstance(value, list):
                raise RecordError(sub, f"expected an array of schemas, got {kind(value)}")
            out[key] = [convert_schema(schema, f"{sub}[{i}]") for i, schema in enumerate(value)]
        elif key == "items":
            if isinstance(value, list):  # old tuple form: one schema per position
                out[key] = [convert_schema(schema, f"{sub}[{i}]") for i, schema in enumerate(value)]
            else:
                out[key] = convert_schema(value, sub)
        elif key in _SCHEMA_ONES and not isinstance(value, bool):
            out[key] = convert_schema(value, sub)
        else:
            out[key] = value
    return out


def convert_parameters(node: Any, field: str) -> dict[str, Any]:
    """A tool's parameters as a JSON-schema object: {"type": "object", "properties": {...}, ...}."""
    if node is None:
        return {"type": "object", "properties": {}}
    schema = convert_schema(node, field)
    declared = schema.get("type", "object")
    if declared != "object":
        raise RecordError(f"{field}.type", f"a tool's parameters must be an object schema, got type {declared!r}")
    out: dict[str, Any] = {"type": "object", "properties": schema.get("properties", {})}
    out.update((k, v) for k, v in schema.items() if k not in out)
    required = out.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise RecordError(f"{field}.required", f"expected an array of parameter names, got {kind(required)}")
        missing = [r for r in required if r not in out["properties"]]
        if missing:
            raise RecordError(f"{field}.required", f"names parameters that are not defined: {', '.join(missing)}")
    return out


def tool_spec(obj: Any, field: str) -> ToolSpec:
    """A benchmark function doc ({name, description, parameters, ...}) as a ToolSpec; other keys (BFCL's
    "response") are dropped."""
    if not isinstance(obj, dict):
        raise RecordError(field, f"expected a function object, got {kind(obj)}")
    if "name" not in obj:
        raise RecordError(f"{field}.name", "missing required field")
    name = text(obj["name"], f"{field}.name", nonempty=True)
    description = text(obj.get("description", ""), f"{field}.description")
    parameters = convert_parameters(obj.get("parameters"), f"{field}.parameters")
    return ToolSpec(name=name, description=description, parameters=parameters)


def tool_specs(items: Any, field: str) -> tuple[ToolSpec, ...]:
    """A list of function docs; duplicate names are an error (a case offers each tool once)."""
    if not isinstance(items, list):
        raise RecordError(field, f"expected an array of functions, got {kind(items)}")
    specs: list[ToolSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        spec = tool_spec(item, f"{field}[{i}]")
        if spec.name in seen:
            raise RecordError(
                f"{field}[{i}].name", f"duplicate function name {spec.name!r} (also {field}[{seen[spec.name]}])"
            )
        seen[spec.name] = i
        specs.append(spec)
    return tuple(specs)
