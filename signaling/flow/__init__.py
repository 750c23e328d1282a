"""The service flow: queues, calls, appointments, interpreters, the service secretary,
presence, what an office offers, and the relays a call lives on.
"""
