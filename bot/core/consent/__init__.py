"""Consent: opt-out keywords and families, quiet hours, the WhatsApp 24-hour window (pure rules)."""
