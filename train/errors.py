"""The base of every error the library raises for bad input.

Library code raises subclasses with a message a user can act on; only the
CLI (``ktp_tflite.convert.cli``) turns them into ``click.ClickException``.
"""


class KtpError(Exception):
    """An error caused by the user's input or environment, not by a bug."""
