"""Standalone copies of the vendors' own dataset validators, for differential tests."""
