"""Readers for packed formats (PDF, Word, web pages): bytes in, a :class:`~qa.types.Document` out."""
