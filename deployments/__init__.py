"""What turns the flows into Prefect deployments (serve entry point, work pool set-up)."""
