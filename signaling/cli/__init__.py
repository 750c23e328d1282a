"""The `etapalvelu` command line: serve, admin, bench, cluster-config.
"""
