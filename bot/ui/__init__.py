"""Pure functions from plain values to Block Kit; no Slack calls, no state."""
