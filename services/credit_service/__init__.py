"""credit-service: consumes submitted applications, scores the applicant, publishes a report."""
