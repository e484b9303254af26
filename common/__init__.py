"""The shared vocabulary: kinds, severities and alarm states, the retry timing, the secret
masker and the write-transaction type. Every package may import it; it imports none of them
and does no I/O (tests/core/test_boundaries.py), so a leaf can use it and stay a leaf."""
