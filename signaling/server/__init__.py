"""Assembles the server: the aiohttp app with socket.io, the event dispatcher, the
features plugged in, draining, the administrators' HTTP API and the demo data.
"""
