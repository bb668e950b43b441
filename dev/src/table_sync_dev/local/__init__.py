"""The embedded AWS: moto in server mode on loopback, with two accounts set up as the runbook does.

Development tooling for the demo, the tests and ``sam local invoke``; moto itself is a development
dependency and is never imported here, only started as a separate process.
"""
