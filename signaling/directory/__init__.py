"""The directory and identities: offices, kiosks, users and authorities, who someone
is (passwords, tokens, kiosk credentials, the home customer's identity step), and
the offices' service hours as pure rules.
"""
