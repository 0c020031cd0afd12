"""The small tree of errors a person can act on.

Every failure that reaches a page, a command or a run row is one of these: its message says
what went wrong and what to do. ``retryable`` marks errors worth trying again (a node that is
restarting, a connection reset), never ones that would repeat a change to data.
"""


class BackupError(Exception):
    retryable = False
    exit_code = 1  # what the command line returns for it

    def __init__(self, message: str, *, detail: str = "", retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        self.detail = detail
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        return self.message


class ConfigError(BackupError):
    """A setting is wrong; the message names it."""

    exit_code = 2


class InvalidInput(BackupError):
    """A name or option given by a person or script is not acceptable."""

    exit_code = 2


class NotAllowed(BackupError):
    """The person asking lacks the right; the message names it and who holds it."""

    exit_code = 2


class NotFound(BackupError):
    exit_code = 4


class Busy(BackupError):
    """Another operation holds the lock."""

    exit_code = 3


class ElasticError(BackupError):
    """Elasticsearch refused or could not be reached."""


class ElasticUnreachable(ElasticError):
    """No Elasticsearch answered at the configured addresses (down, a wrong address or port)."""

    retryable = True


class UnsupportedElasticsearch(ElasticError):
    """Elasticsearch answered, in a version this tool does not speak."""

    exit_code = 2


class StorageError(BackupError):
    """The backup storage or the data dir could not be read or written."""


class DamagedBackup(BackupError):
    """A backup, a blob or the audit chain is not what it claims to be."""

    exit_code = 5


class QueueUnavailable(BackupError):
    """The broker did not take a run for the workers; the run was taken back."""

    retryable = True


class Cancelled(BackupError):
    """Someone asked the running operation to stop."""


class Alien4CloudError(BackupError):
    """Alien4Cloud's REST API refused a call or could not be reached."""


class Alien4CloudUnreachable(Alien4CloudError):
    """No answer from Alien4Cloud (down, restarting, a wrong A4C_SERVER_URL)."""

    retryable = True


class Alien4CloudSignInError(Alien4CloudError):
    """The configured user cannot sign in, or lacks the ADMIN role."""

    exit_code = 2


class MaintenanceHeldElsewhere(Alien4CloudError):
    """Alien4Cloud's maintenance mode is on already, enabled by someone else."""

    exit_code = 3


class OffsiteError(BackupError):
    """The off-site bucket refused a request or holds something unexpected; the message names
    the setting or the object."""


class OffsiteUnreachable(OffsiteError):
    """The off-site bucket's server did not answer (a network cut, a restart): worth a retry."""

    retryable = True
