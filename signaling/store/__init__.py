"""The tables: every SQLAlchemy model of the service, read by the parts above.
"""
