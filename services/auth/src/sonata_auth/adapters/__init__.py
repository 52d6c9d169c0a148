"""Auth's real adapters: MongoDB (Beanie 2), Argon2, Ed25519 signing keys, Authlib."""
