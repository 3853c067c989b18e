"""One module per vendor wire format.

`unitune.data.convert` holds the registry, `write_jsonl` and the public types. `_base` is what the
converters share.
"""
