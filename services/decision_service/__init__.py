"""decision-service: consumes credit reports and moves each application to its final status."""
