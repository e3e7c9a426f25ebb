"""What a serving peer does to keep its claims honest: verify orders, the scrub, audits of others.

PeerNode owns one ClaimKeeper: start() with the node, handle(answer) for every heartbeat
answer, stop() on the way out. The work itself lives in peer_node.verify, peer_node.scrub
and peer_node.audit; this module only wires them to the folder and the directory session.
"""
import logging

from peer_node.audit import Auditor
from peer_node.errors import DirectoryError, P2PError
from peer_node.scrub import Scrubber
from peer_node.verify import Verifier

log = logging.getLogger(__name__)


class ClaimKeeper:
    """The verifier, the scrubber and the auditor of one peer, fed from heartbeat answers."""

    def __init__(self, config, folder, directory, republish):
        self.config, self.folder, self.directory = config, folder, directory
        self.republish = republish  # makes the node PUT its whole index again soon
        self.verifier = Verifier(folder, self._quarantined)
        # a copy the scrub finds rotted is handled as a failed verify order
        self.scrubber = Scrubber(folder, config.scrub_rate, config.scrub_interval, self.verifier.failed)
        # an audit that finds our own range rotted verifies our whole copy instead of answering
        self.auditor = Auditor(folder, directory, config.peer_id, lambda sha256: self.verifier.order([sha256]))

    def start(self):
        """Start the background workers."""
        self.verifier.start()
        self.scrubber.start()
        self.auditor.start()

    def stop(self):
        """Stop them (work in progress is abandoned; nothing half-done is left in the folder)."""
        self.verifier.stop()
        self.scrubber.stop()
        self.auditor.stop()

    def handle(self, answer):
        """Take the orders of one heartbeat answer: verify: [sha256] and audit: [{...}]."""
        self.verifier.order(answer.get("verify") or [])
        self.auditor.order(answer.get("audit") or [])

    def _quarantined(self, sha256, still_shared):
        """Withdraw a quarantined copy: DELETE its entry, or re-publish when that cannot be done."""
        if still_shared:
            self.republish()  # another name still holds these bytes: only the names change
            return
        if not self.directory.token:
            return  # not logged in: the index goes up whole (without it) at the next login
        try:
            self.directory.delete_file(self.config.peer_id, sha256)
        except DirectoryError as exc:
            if exc.status == 404:
                return  # not listed there (any more)
            log.warning("withdrawing %s from the directory failed: %s; publishing the index again",
                        sha256[:12], exc)
            self.republish()
        except P2PError as exc:
            log.warning("withdrawing %s from the directory failed: %s; publishing the index again",
                        sha256[:12], exc)
            self.republish()
