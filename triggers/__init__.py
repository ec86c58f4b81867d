"""The ways in: the HTTP API and the Service Bus queues of the three lanes."""
