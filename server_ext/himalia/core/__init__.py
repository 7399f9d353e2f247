"""Pure helpers every layer may use: errors, permissions, documents, crypto, units, files."""
