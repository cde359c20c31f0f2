"""`make bench`: the app's speed and memory measured from outside, each figure against its
target (never asserted in tests; `make test` only runs a smoke of it so it cannot rot).

The app runs as its own process (`python -m bot`) against the project's fakes (the Slack
emulator, the OpenAI-compatible server with scripted replies and a set latency) over real
HTTP; load comes from a process of its own (`bench.load`). `python -m bench` prints a
table and writes the same figures, with the machine's core count and the versions used, to
`bench/results/latest.json`.
"""
