"""Where the copy goes: ``dynamodb://<table>`` or ``s3://<bucket>/<prefix>``."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict

TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
# S3 general purpose bucket names: 3-63 characters, lowercase letters, digits, dots and hyphens,
# starting and ending with a letter or digit.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class DynamoDBDestination(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["dynamodb"] = "dynamodb"
    table_name: str

    @property
    def uri(self) -> str:
        return f"dynamodb://{self.table_name}"


class S3Destination(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["s3"] = "s3"
    bucket: str
    prefix: str = ""

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_destination(value: Any) -> Any:
    """Turn a destination URI into a destination model; leave models and dicts to pydantic."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        raise ValueError("must be dynamodb://<table> or s3://<bucket>/<prefix>")
    if scheme == "dynamodb":
        if not TABLE_NAME.match(rest):
            raise ValueError(
                "dynamodb://<table>: the table name must be 3-255 characters of "
                "letters, digits, '_', '-' and '.'"
            )
        return DynamoDBDestination(table_name=rest)
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not BUCKET_NAME.match(bucket) or ".." in bucket:
            raise ValueError(
                "s3://<bucket>/<prefix>: the bucket name must be 3-63 lowercase letters, "
                "digits, '.' and '-'"
            )
        prefix = prefix.strip("/")
        if "//" in prefix:
            raise ValueError("s3://<bucket>/<prefix>: the prefix must not contain '//'")
        return S3Destination(bucket=bucket, prefix=prefix)
    raise ValueError(f"unknown scheme {scheme!r}: use dynamodb:// or s3://")


Destination = Annotated[DynamoDBDestination | S3Destination, BeforeValidator(parse_destination)]
