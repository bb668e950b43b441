"""Deploy the project's templates into the embedded AWS through its CloudFormation.

template.yaml goes through the SAM transform first (:mod:`.sam_transform`, run with SAM CLI's
own translator), as ``sam deploy`` sends it; source-account/template.yaml is plain
CloudFormation. moto 5.2's CloudFormation then needs two adaptations, both made here and only
for the embedded AWS (:func:`for_moto`):

- it keeps ``!Ref AWS::NoValue`` as a null inside lists, and its IAM model fails on one in a
  role's ``Policies`` (a TypeError): so conditions and ``Fn::If`` are resolved here, for the
  parameters given, and what resolves to ``AWS::NoValue`` is removed, as CloudFormation does;
- it creates no alarms, schedules, event-invoke configs or bucket policies (it skips them), and
  the dashboard's body then names alarms that do not exist: so those resources are left out.

Everything else (tables, roles and their policies, keys, the bucket, queues, the topic, log
groups, the function and the state machine) is created by moto from the template as written.
"""

from __future__ import annotations

import io
import json
import subprocess
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from table_sync_dev.local.accounts import Account
from table_sync_dev.local.paths import ROOT, SAM_PYTHON

FUNCTION_TEMPLATE = ROOT / "template.yaml"
SOURCE_TEMPLATE = ROOT / "source-account" / "template.yaml"
# Resource types moto 5.2's CloudFormation does not create (see the module docstring).
NOT_EMULATED = frozenset(
    {
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::Lambda::EventInvokeConfig",
        "AWS::S3::BucketPolicy",
        "AWS::Scheduler::Schedule",
    }
)
_NO_VALUE = object()


class StackFailed(RuntimeError):
    """A stack did not reach CREATE_COMPLETE; the message names the failed resources."""


def load_template(path: Path) -> dict[str, Any]:
    """A plain CloudFormation template (YAML, short tags and all), read with cfn-lint's decoder."""
    from cfnlint.decode import decode_str

    template, problems = decode_str(path.read_text())
    if problems or template is None:
        raise ValueError(f"{path}: {problems}")
    return dict(json.loads(json.dumps(template)))


def sam_transform(template: Path, code_uri: str, region: str) -> dict[str, Any]:
    """``template`` after the SAM transform, with every function's code at ``code_uri``."""
    if not SAM_PYTHON.exists():
        raise FileNotFoundError(
            f"{SAM_PYTHON} is missing: `make install` installs aws-sam-cli, whose SAM transform "
            "this uses"
        )
    result = subprocess.run(  # noqa: S603 - SAM CLI's interpreter and our own script
        [SAM_PYTHON, Path(__file__).with_name("sam_transform.py"), template, code_uri, region],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    transformed: dict[str, Any] = json.loads(result.stdout)
    return transformed


class _Resolver:
    """Conditions and ``Fn::If`` of one template, for one set of parameter values."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str]) -> None:
        self._conditions: Mapping[str, Any] = template.get("Conditions", {})
        self._parameters = {
            name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
        } | dict(parameters)

    def condition(self, name: str) -> bool:
        return bool(self._evaluate(self._conditions[name]))

    def _evaluate(self, node: Any) -> Any:
        if not (isinstance(node, dict) and len(node) == 1):
            return node
        ((function, arguments),) = node.items()
        match function:
            case "Ref":
                return self._parameters.get(arguments, node)
            case "Condition":
                return self.condition(arguments)
            case "Fn::Equals":
                return self._evaluate(arguments[0]) == self._evaluate(arguments[1])
            case "Fn::Not":
                return not self._evaluate(arguments[0])
            case "Fn::And":
                return all(self._evaluate(a) for a in arguments)
            case "Fn::Or":
                return any(self._evaluate(a) for a in arguments)
        return node

    def resolve(self, node: Any) -> Any:
        """``node`` with every ``Fn::If`` decided and every ``AWS::NoValue`` removed."""
        if isinstance(node, list):
            return [v for v in map(self.resolve, node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if node == {"Ref": "AWS::NoValue"}:
            return _NO_VALUE
        if set(node) == {"Fn::If"}:
            name, when_true, when_false = node["Fn::If"]
            return self.resolve(when_true if self.condition(name) else when_false)
        resolved = {key: self.resolve(value) for key, value in node.items()}
        return {key: value for key, value in resolved.items() if value is not _NO_VALUE}

    def kept(self, section: Mapping[str, Any]) -> dict[str, Any]:
        """The entries of a Resources or Outputs section whose Condition holds, resolved."""
        return {
            name: self.resolve({k: v for k, v in entry.items() if k != "Condition"})
            for name, entry in section.items()
            if "Condition" not in entry or self.condition(entry["Condition"])
        }


def for_moto(template: Mapping[str, Any], parameters: Mapping[str, str]) -> dict[str, Any]:
    """``template`` as moto 5.2's CloudFormation can create it (see the module docstring)."""
    resolver = _Resolver(template, parameters)
    resources = {
        name: resource
        for name, resource in resolver.kept(template["Resources"]).items()
        if resource["Type"] not in NOT_EMULATED
    }
    outputs = {
        name: output
        for name, output in resolver.kept(template.get("Outputs", {})).items()
        if not _references(output, set(template["Resources"]) - set(resources))
    }
    return {**template, "Conditions": {}, "Resources": resources, "Outputs": outputs}


def _references(node: Any, names: set[str]) -> bool:
    """Whether ``node`` names any of ``names`` (by Ref, GetAtt or inside a Sub)."""
    text = json.dumps(node)
    return any(f'"{name}"' in text or f"${{{name}" in text for name in names)


def upload_code(account: Account, bucket: str, key: str, source: Path) -> str:
    """``source``'s files zipped into ``bucket`` (created if need be); the ``s3://`` URI."""
    s3 = account.client("s3")
    if bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}:
        s3.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": account.region}
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*.py")):
            archive.write(path, path.relative_to(source).as_posix())
    s3.put_object(Bucket=bucket, Key=key, Body=buffer.getvalue())
    return f"s3://{bucket}/{key}"


def deploy(
    account: Account, stack: str, template: Mapping[str, Any], parameters: Mapping[str, str]
) -> dict[str, str]:
    """Create ``stack`` from ``template`` (after :func:`for_moto`); its outputs by name."""
    cloudformation = account.client("cloudformation")
    cloudformation.create_stack(
        StackName=stack,
        TemplateBody=json.dumps(for_moto(template, parameters)),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    if described["StackStatus"] != "CREATE_COMPLETE":
        failed = [
            f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason', '')}"
            for event in cloudformation.describe_stack_events(StackName=stack)["StackEvents"]
            if event["ResourceStatus"].endswith("FAILED")
        ]
        raise StackFailed(f"{stack}: {described['StackStatus']}: {'; '.join(failed)}")
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def physical_ids(account: Account, stack: str) -> dict[str, str]:
    """The stack's resources by logical id: each one's physical id (a name, an ARN, a URL)."""
    summaries = account.client("cloudformation").list_stack_resources(StackName=stack)
    return {
        r["LogicalResourceId"]: r["PhysicalResourceId"] for r in summaries["StackResourceSummaries"]
    }


def function_environment(account: Account, function_name: str) -> dict[str, str]:
    """The deployed function's environment, as Lambda hands it to the runtime: text."""
    configuration = account.client("lambda").get_function_configuration(FunctionName=function_name)
    variables = configuration.get("Environment", {}).get("Variables", {})
    return {name: str(value) for name, value in variables.items()}
