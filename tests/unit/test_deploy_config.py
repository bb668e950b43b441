"""What README's deploy steps rely on in samconfig.toml and the two templates."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

from tests.conftest import ROOT

KEY_ARN = "arn:aws:kms:eu-west-1:111111111111:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALIAS_ARN = "arn:aws:kms:eu-west-1:111111111111:alias/my-table"


def _parameters(template: str) -> dict[str, Any]:
    return dict(cfn_yaml.load(str(ROOT / template))["Parameters"])


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_samconfig_overrides_name_only_template_parameters(env: str) -> None:
    """A misspelt override is dropped by nothing and applied by nothing: catch it here."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploy = config[env]["deploy"]["parameters"]
    names = {override.split("=", 1)[0] for override in deploy["parameter_overrides"]}
    assert names <= set(_parameters("template.yaml")), names - set(_parameters("template.yaml"))
    # What README's step 1 says to set is there to set.
    assert {"SourceRoleArn", "SourceKmsKeyArn", "SourceExternalId"} <= names
    assert deploy["region"]


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_samconfig_holds_placeholders_and_no_schedule_on_a_first_deploy(env: str) -> None:
    """Before, it held the embedded AWS's account ids, and prod enabled its schedule at the
    first deploy, ahead of README's dry run and backfill."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = dict(
        o.split("=", 1) for o in config[env]["deploy"]["parameters"]["parameter_overrides"]
    )
    assert overrides["ScheduleEnabled"] == "false"
    assert (
        "SegmentedScheduleEnabled" not in overrides
        or overrides["SegmentedScheduleEnabled"] == "false"
    )
    for name in ("SourceRoleArn", "SourceKmsKeyArn", "SourceExternalId"):
        assert "REPLACE-WITH-" in overrides[name], name
        assert not re.search(r"\d{12}", overrides[name]), name  # no account id of anyone's
    # A placeholder left in fails the deploy: the template's pattern wants a 12-digit account.
    role_pattern = re.compile(_parameters("template.yaml")["SourceRoleArn"]["AllowedPattern"])
    assert not role_pattern.match(overrides["SourceRoleArn"])


def test_account_a_wants_the_key_arn_and_says_how_to_get_it() -> None:
    parameter = _parameters("source-account/template.yaml")["KmsKeyArn"]
    pattern = re.compile(parameter["AllowedPattern"])
    assert pattern.match(KEY_ARN)
    assert not pattern.match(ALIAS_ARN)
    assert "describe-key" in parameter["ConstraintDescription"]


def test_account_b_takes_the_key_arn_or_an_alias_arn() -> None:
    pattern = re.compile(_parameters("template.yaml")["SourceKmsKeyArn"]["AllowedPattern"])
    assert pattern.match(KEY_ARN)
    assert pattern.match(ALIAS_ARN)
