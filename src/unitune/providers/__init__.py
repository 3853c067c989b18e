"""Provider adapters: one module per vendor, the only place a vendor SDK is imported.

`base` holds the contract, `registry` maps names to modules. Importing this package imports no
adapter; the registry does that on first use.
"""
