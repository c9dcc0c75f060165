"""REST routes by theme. Each module exposes ``routes``: a list of Starlette routes."""
