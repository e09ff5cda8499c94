"""OpenPGP for the portal, with one engine: gpg, through python-gnupg.

- ``keyring``: the team keyring and every gpg run (sign, encrypt, decrypt, check, import).
- ``sealing``: reporter content at rest, sealed to the team key and revealed on demand.
- ``mime``: PGP/MIME (RFC 3156) for outgoing email.

``from disclosure import pgp`` gives the keyring's functions (``pgp.team_key()``,
``pgp.encrypt_to_team()``, ...).
"""

from disclosure.pgp.keyring import (  # noqa: F401
    BEGIN_MESSAGE,
    HIDDEN_RECIPIENT,
    KEY_EXPIRY_WARNING,
    TEXT_MAX_OUTPUT,
    KeyInfo,
    PGPError,
    Plaintext,
    ReporterKey,
    SignatureCheck,
    backup_recipients,
    can_decrypt,
    can_sign,
    check_encrypted_to_team,
    clearsign,
    decrypt,
    decrypt_checked,
    decrypt_to_file,
    decrypting_file,
    detached_sign,
    encrypt_for,
    encrypt_to_team,
    encrypting_to_file,
    export_public,
    file_max_output,
    forget,
    generate_team_key,
    import_team_key,
    import_team_key_file,
    inspect_reporter_key,
    is_armored_message_file,
    key_ids,
    keyring_lock,
    looks_encrypted,
    looks_like_pgp,
    previous_fingerprints,
    recipient_key_ids,
    scratch_keyring,
    secret_fingerprints,
    stop_agent,
    team_encryption_key_ids,
    team_fingerprint,
    team_gpg,
    team_key,
    verify_signature,
    verify_with,
    wkd_hash,
    zbase32,
)
