"""Protocol-faithful local fakes of Discord and Slack, for the adapter tests."""
