"""Thin adapters over the AWS APIs table-sync calls, each named for what it does."""
