"""Wire formats that both sides speak, defined once: the server and its clients import
them (the relay's control format is media_relay/wire.py).
"""
