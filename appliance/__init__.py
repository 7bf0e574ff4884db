"""OfficeBox core: configuration, apply engine, supervisor, networking, certificates, backup, CLI."""
