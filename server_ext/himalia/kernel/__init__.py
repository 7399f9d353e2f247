"""What a notebook's kernel imports: the HTTP client and the ``%%sql`` magic. Never the store."""
