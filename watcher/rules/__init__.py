"""The rule language: normalisation, query parsing, loading and matching; no I/O beyond loading."""
