"""What the domain refuses, in words a user can act on."""


class InvalidPieceError(ValueError):
    """An upload or an edit that cannot become a piece; the message names the problem."""


class UnrenderableReportError(ValueError):
    """A stored report that cannot be drawn or played back; the message says why."""
