"""table-sync: copy a DynamoDB table with KMS-encrypted attributes across AWS accounts."""

__version__ = "0.1.0"
