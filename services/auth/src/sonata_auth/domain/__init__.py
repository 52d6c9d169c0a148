"""Auth's rules: users, sessions, one-time secrets and roles. Imports nothing that does I/O."""
