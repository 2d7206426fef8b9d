"""Domain errors raised by the service layer; the API maps each to one gRPC status."""


class StratumError(Exception):
    code = "INTERNAL"


class InvalidArgument(StratumError):
    """One or more fields are wrong; `violations` lists (field path, description)."""

    code = "INVALID_ARGUMENT"

    def __init__(self, violations: list[tuple[str, str]]):
        self.violations = violations
        super().__init__("; ".join(f"{f}: {d}" for f, d in violations))


class NotFound(StratumError):
    code = "NOT_FOUND"


class AlreadyExists(StratumError):
    code = "ALREADY_EXISTS"


class Unauthenticated(StratumError):
    code = "UNAUTHENTICATED"


class FailedPrecondition(StratumError):
    code = "FAILED_PRECONDITION"


class Unavailable(StratumError):
    """Try again: the store is reconnecting, or this control plane is not the one to ask now."""

    code = "UNAVAILABLE"
