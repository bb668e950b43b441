"""Run the SAM transform offline: ``python sam_transform.py TEMPLATE CODE_URI REGION`` prints
the CloudFormation template that CloudFormation itself would make of ``TEMPLATE`` (JSON).

It runs under aws-sam-cli's own interpreter (``.tools/uv-tools/aws-sam-cli``), whose
``samtranslator`` is the one ``sam deploy`` uses: that package pins its own pydantic, so it is
kept out of the project's environment, and this file imports nothing of the project's.
Every ``AWS::Serverless::Function``'s ``CodeUri`` becomes ``CODE_URI`` (an ``s3://`` URI), as
``sam package`` makes it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class _NoManagedPolicies:
    """The templates name no AWS managed policy; a lookup would need IAM, so there is none."""

    def load(self) -> dict[str, str]:
        return {}


def main(template: str, code_uri: str, region: str) -> None:
    document: dict[str, Any] = yaml_parse(Path(template).read_text())
    for resource in document.get("Resources", {}).values():
        if resource.get("Type") == "AWS::Serverless::Function":
            resource["Properties"]["CodeUri"] = code_uri
    os.environ["AWS_DEFAULT_REGION"] = region
    json.dump(transform(document, {"AWS::Region": region}, _NoManagedPolicies()), sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:4])
