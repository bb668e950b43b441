"""boto3 sessions that share one parse of botocore's service models (clients.py, sts.py)."""

from __future__ import annotations

from typing import Any

import boto3
import botocore.loaders
import botocore.session


def on_models(
    core: botocore.session.Session, loader: botocore.loaders.Loader, **kwargs: Any
) -> boto3.Session:
    """A boto3 session over ``core`` that reads its service models with ``loader``, one that
    other sessions share. boto3 appends its own data directory to the loader of every session
    it makes: the shared one keeps each directory once, as a session's own loader does."""
    core.register_component("data_loader", loader)
    session = boto3.Session(botocore_session=core, **kwargs)
    loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
    return session
