"""docgate's shared modules: one job each (config, credentials, storage, cosmos, telemetry...)."""
