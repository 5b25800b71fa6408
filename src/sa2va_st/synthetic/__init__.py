"""A deterministic miniature world in the real formats, for the demo and the tests."""
