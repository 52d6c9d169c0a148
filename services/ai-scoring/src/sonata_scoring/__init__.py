"""Sonata ai-scoring: live scoring, reports and the coach."""
