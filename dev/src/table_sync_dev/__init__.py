"""table-sync's development and operator tooling, kept out of the Lambda artifact: the
``table-sync`` command (cli.py), the embedded two-account AWS, its provisioning and the demo
(local/). Nothing in ``table_sync`` imports from here."""
