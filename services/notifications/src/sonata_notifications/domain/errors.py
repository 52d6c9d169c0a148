"""How a provider said no: worth retrying, or final."""


class SendError(Exception):
    """A provider refused or could not be reached; ``str(exc)`` is recorded on the notification."""


class TransientSendError(SendError):
    """Try again later: the provider was unreachable, throttled us, or failed on its side."""


class PermanentSendError(SendError):
    """Never retry: a bad address, a gone push subscription, a channel that is not configured."""
