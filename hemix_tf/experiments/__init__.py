"""The experiment harness that reproduces the papers' tables (`hemix-experiment`, docs/RESULTS.md)."""
