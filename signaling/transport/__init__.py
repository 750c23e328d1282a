"""The transport: the socket.io contract and server, the live connections and their
rooms, what every HTTP handler shares, the pages, and the clients of the relays.
"""
