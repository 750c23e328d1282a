"""TURN for participants behind closed networks: coturn configuration and credentials.

coturn_config.py     hardened turnserver.conf (`etapalvelu turn config`)
peer_ranges.py       the peer address ranges coturn must never relay to
credentials.py       short-lived TURN REST API credentials; `ice_servers_for(settings, user)`
allocation_check.py  a real TURN Allocate over UDP/TCP/TLS (`etapalvelu turn check`)
urls.py              strict STUN/TURN URL parsing (RFC 7064/7065)
errors.py            the exception tree
commands.py          the `etapalvelu turn …` command line
"""
