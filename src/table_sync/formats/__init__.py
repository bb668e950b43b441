"""Ciphertext formats: how an item's encrypted attributes are turned back into plaintext."""
