"""Running a site over the years: backup and restore (``backup_*``), schema upgrades
(``schema_versions``)."""
