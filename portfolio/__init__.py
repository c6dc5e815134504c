"""A signed-in user's own objects: watchlists, price alerts and trading plans (Phase II).

Every function takes the owner's id and treats another user's object exactly as a missing one
(404), so that no route can read or change what is not the caller's.
"""
