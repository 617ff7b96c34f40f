
namespace Synod\Exception {
    /**
     * Base of every Synod failure. The code is the gRPC status code the server (or the transport) gave.
     */
    class SynodException extends \RuntimeException {}

    /**
     * No endpoint could be reached, or the connection broke during the call.
     */
    class ConnectionException extends SynodException {}

    /**
     * The call did not finish within the request timeout.
     */
    class TimeoutException extends SynodException {}

    /**
     * The revision asked for is older than the store's compaction point.
     */
    class CompactedException extends SynodException {
        /**
         * The oldest revision still readable, when the server said (0 otherwise).
         *
         * @var int
         */
        public int $compactRevision = 0;
    }

    /**
     * The lease does not exist: it expired or was revoked.
     */
    class LeaseNotFoundException extends SynodException {}

    /**
     * A held lock was lost (its lease expired or was revoked, say while PHP was busy) and another may have taken it since; also when a waiter's lease goes while it waits.
     */
    class LockLostException extends SynodException {}

    /**
     * Election::proclaim() by a candidate that does not lead (never did, resigned, or lost its lease).
     */
    class NotLeaderException extends SynodException {}

    /**
     * Job::ack(), release() or extend() after the job's visibility timeout ran out and another worker claimed it (or finished it): this worker no longer has it, and its work may be done twice.
     */
    class JobLostException extends SynodException {}
}
