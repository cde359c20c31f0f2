"""Tools that ship with the runner, each self-contained and free of Slack."""
