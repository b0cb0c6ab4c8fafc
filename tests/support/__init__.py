"""Helpers shared by the tests (data builders, fixtures, hostile plugin trees); no tests here."""
