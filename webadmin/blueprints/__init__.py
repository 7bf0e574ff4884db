"""Web admin pages: every module here exposing `bp` (and optionally NAV) is registered automatically."""
