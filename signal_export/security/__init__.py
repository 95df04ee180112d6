"""Security and audit tools of the bridge.

``secrets``: secrets from env / ``.env`` / ``*_FILE`` mounted files.
``bootstrap`` + ``cli``: least-privilege MongoDB users (``signal-bootstrap-users``).
``login``: password-free messages for MongoDB login failures.
``secret_scan``: the repository check for committed secrets (CI).
``replay``: re-run a recorded export run and compare its signals (``signal-replay``).
Not for: log redaction (``signal_export.logs``) or application settings
(``signal_export.settings``).
"""
