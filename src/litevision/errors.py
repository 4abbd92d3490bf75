"""Errors that describe a user's mistake. The CLI prints them as one message and exits with code 2."""


class UserError(Exception):
    """Bad input from the user (a name, a path, a config key, a file): the message says what to fix."""
