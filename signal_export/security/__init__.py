"""Security helpers: secret loading (env / ``*_FILE``) and least-privilege MongoDB users.

Not for: log redaction (``signal_export.logs``) or application settings
(``signal_export.settings``).
"""
