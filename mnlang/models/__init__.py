"""Model prices: the table the checker's cost estimate and the runtime's cost accounting share."""
