"""The `variants` field's element type: a name from the variant catalog, checked and listed at the time
of use, so a catalog entry is all it takes to make a new variant valid in manifests and the CRD."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from optismith import catalog


def _known(name: str) -> str:
    if catalog.find(name) is None:
        raise ValueError(f"unknown variant {name!r}; use one of: {', '.join(catalog.names())}")
    return name


class _CatalogEnum:
    """Puts the catalog's names into the JSON schema (and so the CRD) as the field's enum."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        schema["enum"] = catalog.names()
        return schema


VariantName = Annotated[str, AfterValidator(_known), _CatalogEnum()]


def default_variants() -> list[str]:
    return catalog.default_names()
