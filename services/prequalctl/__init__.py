"""`prequalctl`: the operator's command line for the platform (database, keys, and more)."""
