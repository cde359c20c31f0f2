"""The engine: AutoGen teams, the verifier, durable waits, actions, cancellation, recovery.

Knows AutoGen and the store, never Slack. `RunManager` is what the Slack side calls.
"""
