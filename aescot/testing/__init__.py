"""Test helpers that are real servers and fixtures, shipped with the package so flows and benchmarks can use them."""
