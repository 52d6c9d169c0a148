"""Auth's use cases: one async function per use case, dependencies passed in as ports."""
