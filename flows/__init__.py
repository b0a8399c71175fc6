"""Prefect flows: thin orchestration over the ``aescot`` library."""
