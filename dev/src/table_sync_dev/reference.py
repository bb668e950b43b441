"""The configuration reference, generated from what defines the settings, so it cannot drift:
the settings model (each variable, its default and its description), template.yaml (the
parameter, or the stack resource, that sets it in the deployed function) and the CLI (the option
of `table-sync run` that sets it). The documentation site's configuration page embeds it
(dev/mkdocs_hooks.py); ``python -m table_sync_dev.reference`` prints it."""

from __future__ import annotations

import re
from typing import Any

import typer
from pydantic_core import PydanticUndefined

from table_sync.models import Settings
from table_sync_dev.local.paths import ROOT
from table_sync_dev.local.stacks import load_template

MARKER = "<!-- settings-reference -->"


def _references(value: Any, parameters: set[str]) -> tuple[list[str], list[str]]:
    """The template parameters and resources a variable's value refers to."""
    found: tuple[list[str], list[str]] = ([], [])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, inner in node.items():
                if key == "Ref" and isinstance(inner, str):
                    names = [inner]
                elif key == "Fn::Sub" and isinstance(inner, str):
                    names = [p.split(".")[0] for p in _sub_names(inner)]
                elif key == "Fn::GetAtt":
                    names = [inner[0] if isinstance(inner, list) else inner.split(".")[0]]
                else:
                    walk(inner)
                    continue
                for name in names:
                    if not name.startswith("AWS::"):
                        found[0 if name in parameters else 1].append(name)
        elif isinstance(node, list):
            for inner in node:
                walk(inner)

    walk(value)
    return found


def _sub_names(text: str) -> list[str]:
    """The names a ``!Sub`` string refers to (``${!Literal}`` is no reference)."""
    return re.findall(r"\$\{([^!}][^}]*)\}", text)


def template_settings() -> dict[str, str]:
    """Each variable the deployed function gets, as template.yaml sets it."""
    template = load_template(ROOT / "template.yaml")
    parameters = set(template.get("Parameters", {}))
    function = template["Resources"]["SyncFunction"]["Properties"]
    variables = {
        **template.get("Globals", {})
        .get("Function", {})
        .get("Environment", {})
        .get("Variables", {}),
        **function.get("Environment", {}).get("Variables", {}),
    }
    settings = {}
    for name, value in variables.items():
        params, resources = _references(value, parameters)
        parts = [", ".join(f"`{p}`" for p in dict.fromkeys(params))] if params else []
        if resources:
            parts.append("the stack's " + ", ".join(f"`{r}`" for r in dict.fromkeys(resources)))
        if not parts:
            parts.append(f"fixed: `{value}`" if isinstance(value, str) else "fixed")
        settings[name] = "; ".join(parts)
    return settings


# Set per invocation by its event (the state machine's, or a backfill's), not by the stack.
FROM_EVENTS = {"TOTAL_SEGMENTS": "`segment` event", "SEGMENT": "`segment` event"}
FROM_EVENTS["DRY_RUN"] = "`backfill` event (`dry_run`)"


def cli_options(command: str = "run") -> dict[str, str]:
    """Each variable an option of ``table-sync <command>`` sets: named first in its help, or
    by the option's own name."""
    from table_sync_dev.cli import app

    group: Any = typer.main.get_command(app)
    aliases = {info.alias: name for name, info in Settings.model_fields.items()}
    options: dict[str, str] = {}
    for param in group.commands[command].params:
        flag = max(param.opts, key=len)
        first = (getattr(param, "help", None) or "").split(" ", 1)[0].rstrip(":.,")
        if first in aliases:
            options.setdefault(first, f"`{flag}`")
        elif param.name in Settings.model_fields:
            options.setdefault(str(Settings.model_fields[param.name].alias), f"`{flag}`")
    return options


def _default(info: Any) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        return "none"
    value = info.default
    if value is None or value is PydanticUndefined or value == ():
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"`{value}`"


def settings_reference() -> str:
    """The configuration reference: one row per variable."""
    deployed, options = template_settings(), cli_options()
    rows = [
        "| variable | default | template.yaml | `table-sync run` | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for info in Settings.model_fields.values():
        alias = str(info.alias)
        stack = deployed.get(alias) or FROM_EVENTS.get(alias) or "not a parameter (see below)"
        rows.append(
            f"| `{alias}` | {_default(info)} | {stack} "
            f"| {options.get(alias, '')} | {info.description or ''} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_reference())
