"""The configuration reference is generated from the settings model, template.yaml and the CLI:
every setting is in it, described, with where the deployed function gets it."""

from __future__ import annotations

from table_sync.models import Settings
from table_sync_dev.reference import cli_options, settings_reference, template_settings


def test_every_setting_is_described_and_listed() -> None:
    reference = settings_reference()
    for info in Settings.model_fields.values():
        assert info.description, f"{info.alias} has no description"
        assert f"| `{info.alias}` |" in reference


def test_every_variable_the_template_sets_is_a_setting() -> None:
    aliases = {info.alias for info in Settings.model_fields.values()}
    deployed = template_settings()
    # Powertools' and the AWS SDK's own variables are theirs, not table-sync's settings.
    theirs = {name for name in deployed if name.startswith(("POWERTOOLS_", "AWS_"))}
    assert set(deployed) - theirs <= aliases
    # The template passes its parameters: the source's, as README's first deploy sets them.
    assert deployed["SOURCE_ROLE_ARN"] == "`SourceRoleArn`"
    assert "`CopyBucket`" in deployed["DESTINATION"]


def test_the_run_commands_options_are_named_for_their_settings() -> None:
    options = cli_options()
    assert options["SOURCE_TABLE_NAME"] == "`--table`"
    assert options["DESTINATION"] == "`--destination`"
    assert options["TOTAL_SEGMENTS"] == "`--segments`"
