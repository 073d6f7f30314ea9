"""Browser pages (jinja2 templates), plain JS and message catalogs."""
