
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
}
