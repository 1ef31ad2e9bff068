"""The spec's JSON schema as the CRD needs it: every default written out, CEL rules included.

Pydantic leaves `default_factory` defaults out of its JSON schema. The API server, though, applies a
schema's defaults before it evaluates CEL rules, and the CEL twins of the cross-field validators rely on
the same defaults the model applies, so every default is written into the schema: `{}` for a nested
section (the API server then applies the section's own field defaults inside it) and the factory's value
for lists and maps.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema, to_jsonable_python


class WithFactoryDefaults(GenerateJsonSchema):
    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().default_schema(schema)
        value = factory()  # type: ignore[call-arg]
        json_schema: dict[str, Any] = self.generate_inner(schema["schema"])
        json_schema["default"] = {} if isinstance(value, BaseModel) else _minimal(value)
        return json_schema


def _minimal(value: Any) -> Any:
    """A default as JSON, leaving out what nested defaults fill in again (models inside lists)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    if isinstance(value, list | tuple):
        return [_minimal(item) for item in value]
    return to_jsonable_python(value, by_alias=True)


def spec_json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The validation-mode JSON schema of a spec model, camelCase, with every default."""
    return model.model_json_schema(by_alias=True, mode="validation", schema_generator=WithFactoryDefaults)
