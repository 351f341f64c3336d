"""Services: the operations the CLI, the API and the flows all call. Each takes a
session (one unit of work) or owns its transaction, and goes through the domain."""
