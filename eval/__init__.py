"""The scoring harness: validate a submission, score it on the natural test distribution."""
