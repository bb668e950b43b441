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

import ast
import functools
import io
import json
import subprocess
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
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


def as_moto_matches(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` with its DynamoDB and KMS statements on ``Resource: "*"``.

    With IAM enforcement on, moto matches DynamoDB and KMS statements only against ``"*"`` (it
    does not work out which table or key a request names), so a statement naming an ARN would
    deny everything. The deployed roles are therefore scoped by action there: the same actions
    as the templates' exact-ARN statements, which cfn-lint and checkov check instead. STS and S3
    statements keep their ARNs: moto matches those.
    """

    def matchable(statement: dict[str, Any]) -> dict[str, Any]:
        actions = statement["Action"]
        actions = actions if isinstance(actions, list) else [actions]
        if all(a.startswith(("dynamodb:", "kms:")) for a in actions):
            return {**statement, "Resource": "*"}
        return statement

    return {**policy, "Statement": [matchable(s) for s in policy["Statement"]]}


def role_policies(account: Account, role_name: str) -> dict[str, dict[str, Any]]:
    """A role's inline policies, by name."""
    iam = account.client("iam")
    policies = {}
    for name in iam.list_role_policies(RoleName=role_name)["PolicyNames"]:
        document = iam.get_role_policy(RoleName=role_name, PolicyName=name)["PolicyDocument"]
        if isinstance(document, str):
            # boto3 decodes AWS's URL-encoded document into a dict. moto 5.2's CloudFormation
            # stores a role's Policies as Python's repr of the dict instead of JSON (which its
            # IAM enforcement cannot read either: enforceable() puts JSON back).
            document = ast.literal_eval(document)
        policies[name] = document
    return policies


def put_role_policies(account: Account, role_name: str, policies: Mapping[str, Any]) -> None:
    iam = account.client("iam")
    for name, document in policies.items():
        iam.put_role_policy(
            RoleName=role_name, PolicyName=name, PolicyDocument=json.dumps(document)
        )


def enforceable(account: Account, role_arn: str) -> None:
    """The deployed role's policies as moto's IAM enforcement can match them (as_moto_matches)."""
    name = role_arn.rsplit("/", 1)[1]
    put_role_policies(
        account, name, {k: as_moto_matches(v) for k, v in role_policies(account, name).items()}
    )


@functools.cache
def _transformed(code_uri: str, region: str) -> str:
    """The SAM transform (a subprocess of a few seconds) once per process, code and region."""
    return json.dumps(sam_transform(FUNCTION_TEMPLATE, code_uri, region))


_UPLOADED: set[tuple[str, str]] = set()


def function_template(account: Account) -> dict[str, Any]:
    """template.yaml as `sam deploy` sends it, its code uploaded to ``account``'s S3 (once per
    embedded AWS)."""
    bucket, key = f"table-sync-artifacts-{account.account_id}", "table-sync.zip"
    if (account.endpoint, account.account_id) not in _UPLOADED:
        upload_code(account, bucket, key, ROOT / "src")
        _UPLOADED.add((account.endpoint, account.account_id))
    transformed: dict[str, Any] = json.loads(_transformed(f"s3://{bucket}/{key}", account.region))
    return transformed


@dataclass(frozen=True)
class Deployment:
    """What deploying both templates made: AccountB's stack and AccountA's reader role."""

    outputs: dict[str, str]  # AccountB's stack outputs
    resources: dict[str, str]  # AccountB's stack: physical ids by logical id
    reader_role_arn: str
    key_policy_statement: dict[str, Any]  # the source stack's KeyPolicyStatement output

    @property
    def function_role_arn(self) -> str:
        return self.outputs["FunctionRoleArn"]


def deploy_table_sync(
    source: Account,
    destination: Account,
    *,
    stack: str,
    reader_role: str,
    source_table: str,
    key_arn: str,
    external_id: str | None,
    operator_role_arns: Sequence[str] = (),
    **parameters: str,
) -> Deployment:
    """AccountB's stack (template.yaml), then AccountA's (source-account/template.yaml), in
    README's order: the reader role's ARN is known from its name before it exists, and it
    trusts the function role the first stack made (and ``operator_role_arns``). Both stacks'
    roles are then made enforceable by moto (:func:`enforceable`)."""
    reader_role_arn = f"arn:aws:iam::{source.account_id}:role/{reader_role}"
    outputs = deploy(
        destination,
        stack,
        function_template(destination),
        {
            "SourceRoleArn": reader_role_arn,
            "SourceExternalId": external_id or "",
            "SourceTableName": source_table,
            "SourceKmsKeyArn": key_arn,
            **parameters,
        },
    )
    source_outputs = deploy(
        source,
        f"{stack}-source",
        load_template(SOURCE_TEMPLATE),
        {
            "TrustedRoleArn": outputs["FunctionRoleArn"],
            "OperatorRoleArns": ",".join(operator_role_arns),
            "ExternalId": external_id or "",
            "TableName": source_table,
            "KmsKeyArn": key_arn,
            "ReaderRoleName": reader_role,
        },
    )
    enforceable(destination, outputs["FunctionRoleArn"])
    enforceable(source, source_outputs["ReaderRoleArn"])
    return Deployment(
        outputs,
        physical_ids(destination, stack),
        source_outputs["ReaderRoleArn"],
        json.loads(source_outputs["KeyPolicyStatement"]),
    )
