"""The web front end: the HTTP API, its WebSocket event stream and the local playground.

Like the Slack front end (`bot/`), it drives runs through the runner and reads them from the
store's event log; it knows nothing of Slack.
"""
