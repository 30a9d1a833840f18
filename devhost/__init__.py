"""A local Azure Functions host for Python v2 apps: HTTP, blob, timer and Durable triggers.

It drives the real `azure-functions` and `azure-functions-durable` SDK code, so the app it
serves is the same `function_app.py` that `func start` and Azure run.
"""
