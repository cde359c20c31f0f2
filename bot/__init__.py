"""The Slack side: Bolt listeners, Block Kit rendering, and the event publisher."""
