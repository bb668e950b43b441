"""What `sam local invoke` needs to run the function against the embedded AWS.

sam local gives the container every variable template.yaml declares for the function: those
env.json names take its value; the others keep the template's value with the intrinsics
resolved as sam local can (``!Ref StateTable`` becomes ``StateTable``, ``!GetAtt CopyKey.Arn`` a
made-up Lambda ARN), which would send the function to tables that do not exist. So env.json
names every declared variable: the embedded AWS's value, or empty (unset, for table-sync).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

FUNCTION = "SyncFunction"


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (``!Ref``, ``!If``...) read as nothing: only the
    variable names matter here."""


_TemplateLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def declared_variables(template: Path, function: str = FUNCTION) -> list[str]:
    """The environment variables ``template`` declares for ``function``."""
    document: dict[str, Any] = yaml.load(template.read_text(), Loader=_TemplateLoader)  # noqa: S506 - SafeLoader
    properties = document["Resources"][function]["Properties"]
    return list(properties["Environment"]["Variables"])


def env_json(template: Path, values: dict[str, str], function: str = FUNCTION) -> dict[str, Any]:
    """sam's ``--env-vars`` file: every declared variable, ``values``' or empty."""
    return {function: {**dict.fromkeys(declared_variables(template, function), ""), **values}}
