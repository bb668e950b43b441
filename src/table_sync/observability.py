"""The Powertools Logger, Metrics and Tracer the function and the CLI share.

Service name, namespace and log level come from the standard POWERTOOLS_* variables (set in
template.yaml's Globals). Nothing here ever logs an item, a plaintext or a credential: log lines
carry counts, names and error codes.
"""

from aws_lambda_powertools import Logger, Metrics, Tracer

logger = Logger(service="table-sync")
metrics = Metrics(namespace="TableSync", service="table-sync")
tracer = Tracer(service="table-sync")
