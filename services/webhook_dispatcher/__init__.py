"""webhook-dispatcher: delivers decided events to the owning client's webhook endpoints."""
