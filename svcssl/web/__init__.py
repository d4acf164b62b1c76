"""The web panel (Flask blueprints). The only layer that imports Flask."""
