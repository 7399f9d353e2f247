"""Operations: the board of expected fires across projects, the platform's health, backups, the guide."""
