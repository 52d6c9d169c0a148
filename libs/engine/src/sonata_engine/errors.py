"""The engine's own errors: everything it raises for bad input is one of these, with a reason."""


class EngineError(Exception):
    """Base of every error the engine raises on purpose."""


class ScoreFormatError(EngineError):
    """A reference piece (MusicXML or MIDI) could not be read; the message says what is wrong."""


class PerformanceFormatError(EngineError):
    """A performance file or MIDI byte stream could not be read."""


class InvalidEventError(EngineError):
    """A note or control event a session cannot accept (pitch outside 0-127, NaN time...)."""


class SessionStateError(EngineError):
    """A call that the session's state does not allow (feeding after finish, a bad option)."""
