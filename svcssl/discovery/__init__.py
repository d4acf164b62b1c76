"""Where certificates already are on this server: hosting accounts' SSL storage, Apache's SSL virtual
hosts, CA directories — and the index that finds a key or an issuer among them without a scan."""
