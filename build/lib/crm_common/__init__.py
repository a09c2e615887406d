"""What every CRM service shares: event envelope and contracts, outbox, idempotent
consumer, database session, config, auth, HTTP entrypoint and metrics."""
