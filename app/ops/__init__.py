"""Operations on an installation: backups and restores."""
