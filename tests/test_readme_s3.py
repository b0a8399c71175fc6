"""The README's object-storage block works as pasted: a local S3-compatible server (moto's server
mode), the AWS_* variables, ingest and the flow on ``s3://aescot/screening``, ``aescot status``.

Run like the other README blocks (``tests/test_readme.py``'s clean shell in a copy of the checkout),
on a free port through ``S3_PORT``, which the block honours.
"""

from __future__ import annotations

import re

import pytest

from tests.test_readme import Clone, _free_port, blocks_under, readme_blocks, script_of

HEADING = "Running at scale on object storage"


def test_object_storage_block_runs_as_pasted(tmp_path):
    if not any(b.heading == HEADING for b in readme_blocks()):
        pytest.skip(f"README.md has no section {HEADING!r} yet")
    clone = Clone(tmp_path)
    try:
        rc, out = clone.run(
            "s3-block", script_of(blocks_under(HEADING)), timeout_s=900, env={"S3_PORT": str(_free_port())}
        )
        assert rc == 0, clone.report()
        # aescot status on the s3:// root: 32 sources, 4 candidates each, one item each
        for stage, n in (("sources", 32), ("candidates", 128), ("screening items", 32)):
            assert re.search(rf"{stage}\s*│\s*{n}\b", out), f"{stage} != {n}:\n{clone.report()}"
        assert '"generated": 32' in out  # the flow generated for the 32 sources ingest put there
    finally:
        clone.close()
