"""The S3 client of the tests' moto servers (moto accepts any keys; these are its documented ones)."""

from __future__ import annotations

from typing import Any

MOTO_KEYS = {"key": "test", "secret": "test"}
REGION = "us-east-1"


def moto_client(endpoint: str) -> Any:
    """A boto3 S3 client for the moto server at ``endpoint``."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=MOTO_KEYS["key"],
        aws_secret_access_key=MOTO_KEYS["secret"],
        region_name=REGION,
    )
