"""The shared core of the loan prequalification services.

Settings, PAN protection, the database schema and its migrations, the event envelope, the
Kafka adapter and JSON logging: every process builds on these, nothing here imports a service.
Usable from asyncio (the API) and from plain synchronous loops (the consumers) alike.
"""
