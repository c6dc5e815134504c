"""Accounts: users, password sign-in, sessions, tiers and daily forecast quotas.

Pure of HTTP and Ray: the ingress (`serve_app.app`) turns requests into calls here and
`AccountError`s into answers. The database is the record of users, sessions and usage.
"""
