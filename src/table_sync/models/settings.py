"""One settings model for the Lambda's environment and the CLI.

Settings are read from a mapping (``os.environ`` in the handler, the CLI's options in a shell) by
:meth:`Settings.from_env`, validated once, and every problem is reported with the name of the
variable that holds it. Values are never echoed back in errors: some (the external id) are secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from table_sync.errors import ConfigurationError
from table_sync.models.destination import Destination, DynamoDBDestination, S3Destination

ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(?P<account>\d{12}):role/[\w+=,.@/-]{1,512}$")
KMS_KEY_ARN = re.compile(
    r"^arn:aws[a-z-]*:kms:(?P<region>[a-z]{2}(-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"(key/[A-Za-z0-9-]{1,128}|alias/[A-Za-z0-9/_-]{1,250})$"
)
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
ATTRIBUTE_NAME_MAX_BYTES = 255
# Role chaining (the Lambda's role assuming the source role) caps a session at one hour.
SESSION_MIN, SESSION_MAX = 900, 3600


def _json_object(value: Any) -> Any:
    """KMS_ENCRYPTION_CONTEXT arrives as JSON text in the environment."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError('must be a JSON object of strings, e.g. {"purpose": "x"}') from None
        if not isinstance(value, dict):
            raise ValueError("must be a JSON object of strings")
    return value


def _split_names(value: Any) -> Any:
    """``"ssn, card"`` -> ``("ssn", "card")``; lists pass through."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(","))
    return value


NameList = Annotated[tuple[str, ...], BeforeValidator(_split_names)]


def _split_types(value: Any) -> Any:
    """``"ssn:S, photo:B"`` -> ``{"ssn": "S", "photo": "B"}``; mappings pass through."""
    if not isinstance(value, str):
        return value
    types = {}
    for part in value.split(","):
        name, sep, kind = part.strip().rpartition(":")
        if not sep or not name:
            raise ValueError("must be attribute:type pairs, comma-separated (e.g. ssn:S,photo:B)")
        types[name] = kind
    return types


PlaintextTypes = Annotated[dict[str, Literal["S", "B", "auto"]], BeforeValidator(_split_types)]


def _split_masks(value: Any) -> Any:
    """``"card:4, phone:2"`` -> ``{"card": 4, "phone": 2}``; mappings pass through."""
    if not isinstance(value, str):
        return value
    masks: dict[str, Any] = {}
    for part in value.split(","):
        name, sep, keep = part.strip().rpartition(":")
        if not sep or not name:
            raise ValueError("must be attribute:N pairs, comma-separated (e.g. card:4,phone:2)")
        if name in masks:
            raise ValueError(f"attribute named more than once: {name}")
        masks[name] = keep
    return masks


MaskSpec = Annotated[dict[str, Annotated[int, Field(ge=0, le=1024)]], BeforeValidator(_split_masks)]


def _names(variable: str, description: str) -> Any:
    """A list of attribute names, empty unless set."""
    return Field((), alias=variable, description=description)


def _unset(variable: str, description: str) -> Any:
    """A setting with no default."""
    return Field(None, alias=variable, description=description)


def _check_names(names: tuple[str, ...], *, allow_empty: bool) -> tuple[str, ...]:
    if not names and not allow_empty:
        raise ValueError("name at least one attribute (comma-separated)")
    for name in names:
        if not name:
            raise ValueError("empty attribute name (check for stray commas)")
        if len(name.encode()) > ATTRIBUTE_NAME_MAX_BYTES:
            raise ValueError(f"attribute name longer than {ATTRIBUTE_NAME_MAX_BYTES} bytes")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"attribute named more than once: {', '.join(duplicates)}")
    return names


class Settings(BaseModel):
    """Everything a sync needs to know; field aliases are the environment variable names."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    source_role_arn: str = Field(alias="SOURCE_ROLE_ARN", description="the reader role in AccountA")
    source_session_duration: int = Field(
        900,
        alias="SOURCE_SESSION_DURATION",
        description="seconds per source session, 900-3600 (role chaining caps it at one hour)",
    )
    source_external_id: str | None = Field(
        None,
        alias="SOURCE_EXTERNAL_ID",
        description="ExternalId the reader role's trust policy requires",
        repr=False,
    )
    source_table_name: str = Field(
        "my-table",
        alias="SOURCE_TABLE_NAME",
        description="the table to copy",
        pattern=r"^[A-Za-z0-9_.-]{3,255}$",
    )
    source_kms_key_arn: str = Field(
        alias="SOURCE_KMS_KEY_ARN",
        description="key (or alias) ARN that encrypted the attributes; passed as `KeyId`",
    )
    source_region: str | None = Field(
        None,
        alias="SOURCE_REGION",
        description="region of the source table (default: the key's region)",
        pattern=REGION.pattern,
    )
    source_key_attributes: NameList = Field(
        (),
        alias="SOURCE_KEY_ATTRIBUTES",
        description="key attributes, to name items in errors (else the copy table's key, else the scan's)",
    )
    item_format: Literal["attributes", "credstash", "ddb-encryption-client"] = Field(
        "attributes",
        alias="ITEM_FORMAT",
        description="`attributes`, `credstash` or `ddb-encryption-client`",
    )
    encrypted_attributes: NameList = Field(
        (),
        alias="ENCRYPTED_ATTRIBUTES",
        description="comma-separated attributes holding ciphertext (see Formats) (default: required for `attributes`)",
    )
    plaintext_types: PlaintextTypes = Field(
        default_factory=dict,
        alias="PLAINTEXT_TYPES",
        description="the type of each attribute's plaintext in the copy, e.g. `ssn:S,photo:B` (see Formats) (default: `auto` for every attribute)",
    )
    kms_encryption_context: Annotated[dict[str, str], BeforeValidator(_json_object)] = Field(
        default_factory=dict,
        alias="KMS_ENCRYPTION_CONTEXT",
        description="JSON object; `${attr}` values come from the item",
    )
    destination: Destination = Field(
        alias="DESTINATION", description="`dynamodb://<table>` or `s3://<bucket>/<prefix>`"
    )
    # What the copy holds of each decrypted item (see shaping/): the transform, the built-in
    # masks and keyed hashes, the selection, then re-encryption under AccountB's key.
    copy_attributes: NameList = _names(
        "COPY_ATTRIBUTES",
        "comma-separated attributes to copy, besides the key attributes (always kept) (default: every attribute)",
    )
    drop_attributes: NameList = _names(
        "DROP_ATTRIBUTES",
        "comma-separated attributes to leave out of the copy (not key attributes)",
    )
    transform: str | None = Field(
        None,
        alias="TRANSFORM",
        description="`package.module:function` run on each decrypted item before it is written: returns the item to write, or None to leave it out of the copy (see Protecting the copy)",
        pattern=r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*$",
    )
    mask_attributes: MaskSpec = Field(
        default_factory=dict,
        alias="MASK_ATTRIBUTES",
        description="built-in mask: `card:4,phone:2` keeps the last N characters of each String and replaces the rest with `*`",
    )
    hash_attributes: NameList = _names(
        "HASH_ATTRIBUTES",
        "built-in keyed hash: each attribute's value becomes its HMAC-SHA256 (hex) under a key derived from HASH_KEY_ARN, the same in every run, so joins on it still work",
    )
    hash_key_arn: str | None = _unset(
        "HASH_KEY_ARN",
        "AccountB's HMAC_256 KMS key (GENERATE_VERIFY_MAC) that HASH_ATTRIBUTES' key is derived from with `kms:GenerateMac`",
    )
    reencrypt_attributes: NameList = _names(
        "REENCRYPT_ATTRIBUTES",
        "comma-separated attributes written as AWS Encryption SDK ciphertext under DESTINATION_ATTRIBUTE_KEY_ARN (Binary), instead of plaintext",
    )
    destination_attribute_key_arn: str | None = _unset(
        "DESTINATION_ATTRIBUTE_KEY_ARN",
        "AccountB's KMS key that REENCRYPT_ATTRIBUTES are encrypted under",
    )
    reencrypt_context: Literal["attribute", "item"] = Field(
        "attribute",
        alias="REENCRYPT_CONTEXT",
        description="what each ciphertext's encryption context binds: `attribute` (the source table and the attribute name: one data key serves many items) or `item` (also the item's key: one `kms:GenerateDataKey` per value written, one `kms:Decrypt` per value read)",
    )
    reencrypt_cache_max_age: float = Field(
        300.0,
        alias="REENCRYPT_CACHE_MAX_AGE_SECONDS",
        description="how long one data key encrypts before KMS is asked for a new one",
        gt=0,
        le=86_400,
    )
    reencrypt_cache_max_messages: int = Field(
        100_000,
        alias="REENCRYPT_CACHE_MAX_MESSAGES",
        description="how many values one data key encrypts before KMS is asked for a new one",
        ge=1,
        le=2**32,
    )
    # The SSE-KMS key of every object written to S3: an s3:// DESTINATION, a backfill's s3://
    # destination, an s3:// QUARANTINE. So it is kept beside a dynamodb:// DESTINATION too.
    destination_kms_key_arn: str | None = Field(
        None,
        alias="DESTINATION_KMS_KEY_ARN",
        description="SSE-KMS key for every S3 object written (an `s3://` destination, a backfill's, an `s3://` quarantine), else AES256; kept beside a `dynamodb://` destination",
    )
    on_decrypt_error: Literal["quarantine", "fail"] = Field(
        "quarantine",
        alias="ON_DECRYPT_ERROR",
        description="what an item that cannot be decrypted does: `quarantine` (it goes to QUARANTINE, the run goes on) or `fail` (the run stops)",
    )
    quarantine: Destination | None = Field(
        None,
        alias="QUARANTINE",
        description="`dynamodb://<table>` or `s3://<bucket>/<prefix>`; required with a DynamoDB destination (default: beside an S3 destination)",
    )
    decrypt_concurrency: int = Field(
        64,
        alias="DECRYPT_CONCURRENCY",
        description="Decrypts in flight at once (`KMS_CLIENT=botocore`: items decrypted at once), 1-64: 64 keeps one vCPU at its CPU limit where a Decrypt takes about 5 ms (measured, 48 left a page's Decrypts a third above their latency floor; see Performance)",
        ge=1,
        le=64,
    )
    kms_cache_size: int = Field(
        10_000,
        alias="KMS_CACHE_SIZE",
        description="distinct ciphertexts remembered per run (0: none)",
        ge=0,
        le=1_000_000,
    )
    kms_max_attempts: int = Field(
        10,
        alias="KMS_MAX_ATTEMPTS",
        description="attempts per Decrypt, throttling included",
        ge=1,
        le=20,
    )
    # How Decrypt is sent: "lean" (awscrt's signer and HTTP client, the same endpoint,
    # credentials, retries and errors: aws/kms_lean.py), or "botocore" (a boto3 client).
    kms_client: Literal["lean", "botocore"] = Field(
        "lean",
        alias="KMS_CLIENT",
        description="how Decrypt is sent: `lean` (awscrt's SigV4 signer and HTTP client: the endpoint, proxies, TLS verification, credentials, standard retries and error codes botocore's client would use, at about a quarter of its CPU per call; see `aws/kms_lean.py` and Performance), or `botocore` (a boto3 client: the safety valve)",
    )
    # How the scan's pages and the DynamoDB destination's batches are sent: "lean" (the same
    # transport as the lean Decrypt: aws/dynamodb_lean.py), or "botocore" (a boto3 client).
    dynamodb_client: Literal["lean", "botocore"] = Field(
        "lean",
        alias="DYNAMODB_CLIENT",
        description="how the scan's pages and the DynamoDB copy's `BatchWriteItem`/`BatchGetItem` are sent: `lean` (the lean Decrypt's transport, the items written and read with the standard library's `json`; the same endpoint, retries, CRC32 check and error codes; see `aws/dynamodb_lean.py`), or `botocore` (a boto3 client: the safety valve)",
    )
    page_size: int | None = Field(
        None,
        alias="PAGE_SIZE",
        description="Scan `Limit` (none: full 1 MB pages, fewest requests)",
        ge=1,
        le=100_000,
    )
    state_table: str | None = Field(
        None,
        alias="STATE_TABLE",
        description="run-state table: checkpoints, leases (required for segments)",
        pattern=r"^[A-Za-z0-9_.-]{3,255}$",
    )
    resume_margin_seconds: int = Field(
        60,
        alias="RESUME_MARGIN_SECONDS",
        description="checkpoint and return `continue` when less time is left",
        ge=5,
        le=600,
    )
    lease_seconds: int = Field(
        1200,
        alias="LEASE_SECONDS",
        description="how long a run's lease on its destination lasts unless renewed",
        ge=60,
        le=86_400,
    )
    read_capacity_per_second: float | None = Field(
        None,
        alias="READ_CAPACITY_PER_SECOND",
        description="read capacity units per second for the whole scan",
        gt=0,
        le=1_000_000,
    )
    kms_requests_per_second: float | None = Field(
        None,
        alias="KMS_REQUESTS_PER_SECOND",
        description="Decrypt requests per second for the whole run",
        gt=0,
        le=1_000_000,
    )
    # List prices in us-east-1 (USD), for the summary's cost estimate: KMS requests, and
    # on-demand write request units (a put of up to 1 KB, or a delete, is one).
    kms_price_per_10k_requests: float = Field(
        0.03,
        alias="KMS_PRICE_PER_10K_REQUESTS",
        description="price of 10,000 KMS requests, for the summary's cost estimate (us-east-1, USD)",
        ge=0,
    )
    write_price_per_million_units: float = Field(
        0.625,
        alias="WRITE_PRICE_PER_MILLION_UNITS",
        description="price of a million on-demand write request units, for the cost estimate (us-east-1, USD)",
        ge=0,
    )
    # Unset: a mirror (deletes swept) wherever it can be, a dynamodb:// copy with STATE_TABLE.
    sweep_deletes: bool | None = Field(
        None,
        alias="SWEEP_DELETES",
        description="delete from a DynamoDB copy what the source no longer holds (the mirror) (default: on for a DynamoDB copy with `STATE_TABLE`)",
    )
    full_copy: bool = Field(
        False,
        alias="FULL_COPY",
        description="decrypt and write every item, not only those changed since their copies were made (S3: a full snapshot)",
    )
    # An s3:// copy's change index (a DynamoDB table in AccountB with the source's key schema):
    # with it, runs write incremental exports between full snapshots.
    change_index_table: str | None = Field(
        None,
        alias="CHANGE_INDEX_TABLE",
        description="S3 only: the change index (a table with the source's key schema) for incremental exports; needs `STATE_TABLE`; belongs to the first destination that uses it (another is refused: a shared index would lose deletions)",
        pattern=r"^[A-Za-z0-9_.-]{3,255}$",
    )
    full_snapshot_every: int = Field(
        7,
        alias="FULL_SNAPSHOT_EVERY",
        description="S3 with `CHANGE_INDEX_TABLE`: every Nth run is a full snapshot, the others incremental exports (1: all full)",
        ge=1,
        le=10_000,
    )
    # A dynamodb:// copy (with STATE_TABLE): every Nth complete run is a FULL_COPY, which
    # repairs drift (hand edits to the copy) that runs of the changed items never touch.
    full_copy_every: int | None = Field(
        None,
        alias="FULL_COPY_EVERY",
        description="a `dynamodb://` copy: every Nth complete run decrypts and rewrites every item, repairing drift (needs `STATE_TABLE`)",
        ge=1,
        le=10_000,
    )
    total_segments: int | None = Field(
        None,
        alias="TOTAL_SEGMENTS",
        description="parallel scan: how many segments the run has (with SEGMENT)",
        ge=1,
        le=1_000_000,
    )
    segment: int | None = Field(
        None,
        alias="SEGMENT",
        description="parallel scan: this invocation's segment, from 0 (with TOTAL_SEGMENTS)",
        ge=0,
        le=999_999,
    )
    dry_run: bool = Field(
        False,
        alias="DRY_RUN",
        description="scan and decrypt what a real run would, write nothing, report what it would do",
    )
    write_max_attempts: int = Field(
        8,
        alias="WRITE_MAX_ATTEMPTS",
        description="BatchWriteItem attempts for unprocessed items",
        ge=1,
        le=30,
    )
    write_concurrency: int = Field(
        8,
        alias="WRITE_CONCURRENCY",
        description="BatchWriteItem requests of a page in flight at once, 1-32",
        ge=1,
        le=32,
    )
    read_concurrency: int = Field(
        32,
        alias="READ_CONCURRENCY",
        description="BatchGetItem requests of a page in flight at once: the copy's digests, read by a mirror or an incremental export, 1-32",
        ge=1,
        le=32,
    )
    write_backoff_base: float = Field(
        0.05,
        alias="WRITE_BACKOFF_BASE_SECONDS",
        description="first backoff between BatchWriteItem attempts for unprocessed items; doubles up to WRITE_BACKOFF_CAP_SECONDS, with full jitter",
        gt=0,
        le=10,
    )
    write_backoff_cap: float = Field(
        5.0,
        alias="WRITE_BACKOFF_CAP_SECONDS",
        description="the longest backoff between BatchWriteItem attempts",
        gt=0,
        le=60,
    )
    s3_file_max_bytes: int = Field(
        64 * 1024 * 1024,
        alias="S3_FILE_MAX_BYTES",
        description="uncompressed bytes per S3 data file",
        ge=1024,
        le=1024 * 1024 * 1024,
    )

    @field_validator("source_role_arn")
    @classmethod
    def _role_arn(cls, value: str) -> str:
        if not ROLE_ARN.match(value):
            raise ValueError("must be an IAM role ARN (arn:aws:iam::<account>:role/<name>)")
        return value

    @field_validator("source_session_duration")
    @classmethod
    def _duration(cls, value: int) -> int:
        if not SESSION_MIN <= value <= SESSION_MAX:
            raise ValueError(
                f"must be {SESSION_MIN} to {SESSION_MAX} seconds: the function's role assumes the "
                "source role by role chaining, which AWS limits to one hour"
            )
        return value

    @field_validator("source_external_id")
    @classmethod
    def _external_id(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[\w+=,.@:/-]{2,1224}", value):
            raise ValueError("must be 2-1224 characters of letters, digits and +=,.@:/-")
        return value

    @field_validator(
        "source_kms_key_arn",
        "destination_kms_key_arn",
        "hash_key_arn",
        "destination_attribute_key_arn",
    )
    @classmethod
    def _kms_arn(cls, value: str | None) -> str | None:
        if value is not None and not KMS_KEY_ARN.match(value):
            raise ValueError(
                "must be a KMS key ARN or alias ARN "
                "(arn:aws:kms:<region>:<account>:key/<id> or ...:alias/<name>)"
            )
        return value

    @field_validator(
        "encrypted_attributes",
        "copy_attributes",
        "drop_attributes",
        "hash_attributes",
        "reencrypt_attributes",
    )
    @classmethod
    def _encrypted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _check_names(value, allow_empty=True)

    @field_validator("source_key_attributes")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        names = _check_names(value, allow_empty=True)
        if len(names) > 2:
            raise ValueError("a DynamoDB key has one or two attributes (partition, sort)")
        return names

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_env(cls, environ: Mapping[str, str], **overrides: Any) -> Settings:
        """Validate settings from environment-style variables.

        Empty values count as unset (CloudFormation passes empty parameters as ""). Keyword
        overrides use field names and win over the mapping. Raises :class:`ConfigurationError`
        naming every bad variable.
        """
        data: dict[str, Any] = {
            alias: value
            for name, info in cls.model_fields.items()
            if (alias := info.alias or name) in environ and (value := environ[alias]) != ""
        }
        for name, value in overrides.items():
            if value is not None:
                data[cls.model_fields[name].alias or name] = value
        return cls._validated(data)

    @classmethod
    def _validated(cls, data: Mapping[str, Any]) -> Settings:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            # The rules across settings run only once every field is valid; a missing
            # ENCRYPTED_ATTRIBUTES is told now too, not after the others are fixed.
            problems = describe_validation_error(exc)
            if _lacks_encrypted_attributes(data) and not any(
                p.startswith("ENCRYPTED_ATTRIBUTES:") for p in problems
            ):
                problems.append(ENCRYPTED_ATTRIBUTES_REQUIRED)
            raise ConfigurationError(problems) from None

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` (field names) applied, validated like any other settings:
        pydantic's own model_copy skips validation, so an override could break a rule that
        settings from the environment must keep."""
        del deep  # every field is immutable
        copied = self._validated({**self.model_dump(), **(update or {})})
        assert isinstance(copied, type(self))
        return copied

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Rules across settings; each problem is reported under the variable to change."""
        problems = self._consistency_problems()
        if problems:  # each as its own error, under the variable to change
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("consistency", message),
                        loc=(variable,),
                        input=None,
                    )
                    for variable, _, message in (p.partition(": ") for p in problems)
                ],
            )
        return self

    def _consistency_problems(self) -> list[str]:
        problems = []
        if self.write_backoff_cap < self.write_backoff_base:
            problems.append(
                "WRITE_BACKOFF_CAP_SECONDS: must not be smaller than WRITE_BACKOFF_BASE_SECONDS"
            )
        overlap = sorted(set(self.encrypted_attributes) & set(self.source_key_attributes))
        if overlap:
            problems.append(
                f"ENCRYPTED_ATTRIBUTES: key attribute(s) {', '.join(overlap)} cannot be "
                "encrypted: the copy must keep the source's keys"
            )
        if (self.segment is None) != (self.total_segments is None):
            problems.append("SEGMENT: SEGMENT and TOTAL_SEGMENTS go together (a parallel scan)")
        elif (self.segment or 0) >= (self.total_segments or 1):
            problems.append("SEGMENT: must be below TOTAL_SEGMENTS (segments count from 0)")
        if self.sweep_deletes and not isinstance(self.destination, DynamoDBDestination):
            problems.append(
                "SWEEP_DELETES: applies to a dynamodb:// destination (an s3:// copy records "
                "deletes in its incremental exports, with CHANGE_INDEX_TABLE)"
            )
        if self.incremental and not self.state_table and not self.dry_run:
            problems.append(
                "CHANGE_INDEX_TABLE: requires STATE_TABLE: the chain of exports, the keys a "
                "run saw and the destination's lease are kept there"
            )
        if self.sweep_deletes and not self.state_table and not self.dry_run:
            problems.append(
                "SWEEP_DELETES: requires STATE_TABLE: deleting from the copy needs the "
                "destination's lease, or two runs delete each other's items"
            )
        if (
            self.full_copy_every
            and isinstance(self.destination, DynamoDBDestination)
            and not self.state_table
            and not self.dry_run
        ):
            problems.append(
                "FULL_COPY_EVERY: requires STATE_TABLE: the complete runs since the last full "
                "copy are counted there"
            )
        if (self.total_segments or 1) > 1 and not self.state_table:
            problems.append(
                "STATE_TABLE: required for a parallel scan (TOTAL_SEGMENTS > 1): the segments "
                "record their progress there and the run is finished from it"
            )
        return problems + self._format_problems() + self._shaping_problems()

    def _shaping_problems(self) -> list[str]:
        """Rules of the settings that shape the copy (see shaping/)."""
        problems = []
        keys = set(self.source_key_attributes)
        if self.copy_attributes and self.drop_attributes:
            problems.append(
                "DROP_ATTRIBUTES: set COPY_ATTRIBUTES (what to keep) or DROP_ATTRIBUTES (what "
                "to leave out), not both"
            )
        if dropped_keys := sorted(keys & set(self.drop_attributes)):
            problems.append(
                f"DROP_ATTRIBUTES: {', '.join(dropped_keys)} is a key attribute: the copy "
                "keeps the source's keys"
            )
        for variable, names in (
            ("MASK_ATTRIBUTES", tuple(self.mask_attributes)),
            ("HASH_ATTRIBUTES", self.hash_attributes),
            ("REENCRYPT_ATTRIBUTES", self.reencrypt_attributes),
        ):
            if on_keys := sorted(keys & set(names)):
                problems.append(
                    f"{variable}: {', '.join(on_keys)} is a key attribute: the copy keeps the "
                    "source's keys as they are"
                )
            if left_out := sorted(set(names) - self.kept(set(names))):
                problems.append(
                    f"{variable}: {', '.join(left_out)} not copied (COPY_ATTRIBUTES / "
                    "DROP_ATTRIBUTES)"
                )
        claimed = [
            *self.mask_attributes,
            *self.hash_attributes,
            *self.reencrypt_attributes,
        ]
        if twice := sorted({name for name in claimed if claimed.count(name) > 1}):
            problems.append(
                f"REENCRYPT_ATTRIBUTES: {', '.join(twice)} named by more than one of "
                "MASK_ATTRIBUTES, HASH_ATTRIBUTES and REENCRYPT_ATTRIBUTES"
            )
        if self.hash_attributes and not self.hash_key_arn:
            problems.append("HASH_KEY_ARN: required with HASH_ATTRIBUTES (AccountB's HMAC key)")
        if self.reencrypt_attributes and not self.destination_attribute_key_arn:
            problems.append(
                "DESTINATION_ATTRIBUTE_KEY_ARN: required with REENCRYPT_ATTRIBUTES (AccountB's "
                "key they are encrypted under)"
            )
        if (
            self.shapes_items
            and isinstance(self.destination, S3Destination)
            and not self.source_key_attributes
            and not self.change_index_table
        ):
            problems.append(
                "SOURCE_KEY_ATTRIBUTES: required to shape the items of an s3:// copy (the "
                "key attributes are kept, and checked after TRANSFORM)"
            )
        return problems

    def kept(self, names: set[str]) -> set[str]:
        """Which of ``names`` the selection (COPY_ATTRIBUTES, DROP_ATTRIBUTES) copies; the key
        attributes are always copied, and are not asked about here."""
        if self.copy_attributes:
            return names & set(self.copy_attributes)
        return names - set(self.drop_attributes)

    @property
    def decrypted_attributes(self) -> tuple[str, ...]:
        """The ENCRYPTED_ATTRIBUTES a run decrypts: those the selection copies. Without a
        TRANSFORM (which sees the whole item), one the copy leaves out costs no Decrypt."""
        if self.transform:
            return self.encrypted_attributes
        kept = self.kept(set(self.encrypted_attributes))
        return tuple(name for name in self.encrypted_attributes if name in kept)

    @property
    def shapes_items(self) -> bool:
        """Whether the copy is anything but the decrypted item as it is."""
        return bool(
            self.copy_attributes
            or self.drop_attributes
            or self.transform
            or self.mask_attributes
            or self.hash_attributes
            or self.reencrypt_attributes
        )

    def _format_problems(self) -> list[str]:
        """Rules of ITEM_FORMAT and ON_DECRYPT_ERROR."""
        problems = []
        typed = {
            "attributes": set(self.encrypted_attributes),
            "credstash": {"contents"},
            "ddb-encryption-client": set(),
        }[self.item_format]
        if unknown := sorted(set(self.plaintext_types) - typed):
            problems.append(
                f"PLAINTEXT_TYPES: {', '.join(unknown)} not decrypted with ITEM_FORMAT="
                f"{self.item_format} (it types ENCRYPTED_ATTRIBUTES; credstash: contents; the "
                "DynamoDB Encryption Client restores the written types itself)"
            )
        if self.item_format == "attributes" and not self.encrypted_attributes:
            problems.append(ENCRYPTED_ATTRIBUTES_REQUIRED)
        if self.item_format == "credstash" and self.encrypted_attributes not in ((), ("contents",)):
            problems.append(
                "ENCRYPTED_ATTRIBUTES: a credstash item's ciphertext is always 'contents'; "
                "leave it unset with ITEM_FORMAT=credstash"
            )
        if (
            self.item_format == "ddb-encryption-client"
            and not self.source_key_attributes
            and not isinstance(self.destination, DynamoDBDestination)
        ):
            problems.append(
                "SOURCE_KEY_ATTRIBUTES: required with ITEM_FORMAT=ddb-encryption-client and an "
                "s3:// destination (the KMS encryption context binds the table's key)"
            )
        if self.item_format == "ddb-encryption-client" and self.kms_encryption_context:
            problems.append(
                "KMS_ENCRYPTION_CONTEXT: the DynamoDB Encryption Client builds its own "
                "context (table name and key); leave it unset"
            )
        if (
            self.on_decrypt_error == "quarantine"
            and self.quarantine is None
            and isinstance(self.destination, DynamoDBDestination)
        ):
            problems.append(
                "QUARANTINE: required with a dynamodb:// destination (a dynamodb://<table> or "
                "s3://<bucket>/<prefix> for items that cannot be decrypted), or set "
                "ON_DECRYPT_ERROR=fail"
            )
        return problems

    # -- derived values -------------------------------------------------------------------------

    @property
    def mirror(self) -> bool:
        """Whether a complete run finds what the source no longer holds: for a dynamodb:// copy,
        SWEEP_DELETES (by default with a STATE_TABLE, for the lease) deletes it from the copy;
        for an s3:// copy with CHANGE_INDEX_TABLE, the incremental export records its deletion."""
        if isinstance(self.destination, S3Destination):
            return self.incremental  # deletes go into the incremental export
        if self.sweep_deletes is not None:
            return self.sweep_deletes
        return isinstance(self.destination, DynamoDBDestination) and bool(self.state_table)

    @property
    def incremental(self) -> bool:
        """Whether an s3:// copy writes incremental exports (CHANGE_INDEX_TABLE; ignored for a
        dynamodb:// copy, which is a mirror of its own)."""
        return isinstance(self.destination, S3Destination) and bool(self.change_index_table)

    @property
    def source_account(self) -> str:
        match = ROLE_ARN.match(self.source_role_arn)
        assert match is not None  # guaranteed by the field pattern
        return match["account"]

    @property
    def kms_region(self) -> str:
        match = KMS_KEY_ARN.match(self.source_kms_key_arn)
        assert match is not None  # guaranteed by the validator
        return match["region"]

    @property
    def table_region(self) -> str:
        """The source table's region: SOURCE_REGION, else the KMS key's region."""
        return self.source_region or self.kms_region

    @property
    def table_region_origin(self) -> str:
        """Where the table's region came from, for messages about a table not found there."""
        if self.source_region:
            return f"{self.source_region} (SOURCE_REGION)"
        return (
            f"{self.kms_region} (the region of SOURCE_KMS_KEY_ARN; set SOURCE_REGION if the "
            "table is in another)"
        )

    @property
    def source_table_arn(self) -> str:
        partition = self.source_role_arn.split(":")[1]
        return (
            f"arn:{partition}:dynamodb:{self.table_region}:{self.source_account}:"
            f"table/{self.source_table_name}"
        )

    @property
    def quarantine_target(self) -> DynamoDBDestination | S3Destination | None:
        """QUARANTINE, else ``<prefix>/quarantine`` beside an S3 destination."""
        if self.on_decrypt_error == "fail":
            return None
        if self.quarantine is not None:
            return self.quarantine
        if isinstance(self.destination, S3Destination):
            prefix = "/".join(p for p in (self.destination.prefix, "quarantine") if p)
            return S3Destination(bucket=self.destination.bucket, prefix=prefix)
        return None

    @property
    def destination_table(self) -> str | None:
        return (
            self.destination.table_name
            if isinstance(self.destination, DynamoDBDestination)
            else None
        )


ENCRYPTED_ATTRIBUTES_REQUIRED = (
    "ENCRYPTED_ATTRIBUTES: required but not set (ITEM_FORMAT=attributes names the attributes "
    "that hold KMS ciphertext)"
)


def _lacks_encrypted_attributes(data: Mapping[str, Any]) -> bool:
    """ITEM_FORMAT=attributes (the default) without ENCRYPTED_ATTRIBUTES, in raw settings
    (keyed by variable, or by field name as model_copy passes them)."""
    item_format = data.get("ITEM_FORMAT", data.get("item_format", "attributes"))
    encrypted = data.get("ENCRYPTED_ATTRIBUTES", data.get("encrypted_attributes"))
    return item_format == "attributes" and not encrypted


def describe_validation_error(exc: ValidationError, prefix: str = "") -> list[str]:
    """``loc: message`` per problem, without the offending input (it may be secret)."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(part) for part in error["loc"] if not isinstance(part, int))
        if error["type"] == "missing":
            message = "required but not set"
        else:
            message = error["msg"].removeprefix("Value error, ")
        problems.append(f"{prefix}{loc}: {message}" if loc else f"{prefix.rstrip('.')}: {message}")
    return problems
