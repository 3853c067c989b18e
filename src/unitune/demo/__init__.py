"""The demo: a seeded customer-support triage dataset and the end-to-end run behind `unitune demo`."""
