"""Checking an OpenAPI document against the aiohttp app that serves its API: valid
OpenAPI 3.1, and the same operations both ways."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
from aiohttp import web

# The OpenAPI 3.1 meta-schema as schemathesis ships it (the spec's own 2022-10-07
# schema). It leaves Schema Objects to their dialect, JSON Schema 2020-12: those are
# checked one by one against its meta-schema.
from schemathesis.specs.openapi.definitions import OPENAPI_31

from app.edge.openapi import BASE_PATH

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# aiohttp's own placeholder pattern, and the one the admin routes spell out.
ANY_SEGMENT = ("[^{}/]+", "[^/]+")
WORDS = re.compile(r"^[\w-]+(\|[\w-]+)*$")

Operation = tuple[str, str]  # (METHOD, /api/v1/path/{name})


def check_openapi_31(document: dict[str, Any]) -> None:
    """Raises jsonschema_rs.ValidationError naming what is not valid OpenAPI 3.1."""
    jsonschema_rs.Draft202012Validator(OPENAPI_31).validate(document)
    for schema in document["components"]["schemas"].values():
        jsonschema_rs.meta.validate(schema)


def check_examples(document: dict[str, Any]) -> int:
    """Each request body's example fits its schema (a reader copies them); how many."""
    checked = 0
    for item in document["paths"].values():
        for operation in item.values():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                if "example" in media:
                    # The schema at the document's root, so its $refs resolve.
                    schema = {**media["schema"], "components": document["components"]}
                    jsonschema_rs.Draft202012Validator(schema).validate(media["example"])
                    checked += 1
    return checked


def documented_operations(document: dict[str, Any]) -> set[Operation]:
    base = document["servers"][0]["url"]
    return {
        (method.upper(), base + path)
        for path, item in document["paths"].items()
        for method in item
        if method in HTTP_METHODS
    }


def routed_operations(app: web.Application) -> set[Operation]:
    """Every route under BASE_PATH, in sub-applications too (whose routes aiohttp has
    given their prefix), with each placeholder as ``{name}`` and each alternation of
    words (``{kind:offers|affiliates}``) one path per word. aiohttp adds a HEAD beside
    every GET: the documents describe the GET."""
    found: set[Operation] = set()
    for resource in app.router.resources():
        info = resource.get_info()
        if "app" in info:
            found |= routed_operations(info["app"])
            continue
        if "path" in info:
            paths = [info["path"]]
        else:
            paths = _expanded(info["formatter"], info["pattern"].pattern)
        found |= {
            (route.method, path)
            for route in resource
            for path in paths
            if route.method != "HEAD" and path.startswith(BASE_PATH + "/")
        }
    return found


def _expanded(formatter: str, pattern: str) -> list[str]:
    paths = [formatter]
    for name in re.findall(r"\{(\w+)\}", formatter):
        regex = _group(pattern, name)
        if regex in ANY_SEGMENT:
            continue
        if not WORDS.match(regex):
            raise AssertionError(f"no rule to document the placeholder {{{name}:{regex}}}")
        paths = [p.replace(f"{{{name}}}", word) for p in paths for word in regex.split("|")]
    return paths


def _group(pattern: str, name: str) -> str:
    """The regex of the named group ``name`` in a route's compiled pattern."""
    start = pattern.index(f"(?P<{name}>") + len(f"(?P<{name}>")
    depth = 0
    for end in range(start, len(pattern)):
        if pattern[end] == "(" and pattern[end - 1] != "\\":
            depth += 1
        elif pattern[end] == ")" and pattern[end - 1] != "\\":
            if depth == 0:
                return pattern[start:end]
            depth -= 1
    raise AssertionError(f"unbalanced group {name} in {pattern}")


def differences(app: web.Application, document: dict[str, Any]) -> dict[str, list[Operation]]:
    """Routes the document lacks, and documented operations no route answers."""
    routed, documented = routed_operations(app), documented_operations(document)
    return {
        "routes missing from the document": sorted(routed - documented),
        "documented operations without a route": sorted(documented - routed),
    }
