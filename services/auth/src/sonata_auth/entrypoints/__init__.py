"""HTTP routers of auth: parse, call one use case, render."""
