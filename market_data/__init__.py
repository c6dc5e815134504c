"""Market data: the Massive (Polygon.io) API, CSV exports and a synthetic market behind one interface."""
