"""Blueprint for claims: reports about a holder's copy (corrupt, verified) and audit answers."""
from __future__ import annotations

from flask import current_app, g

from .. import auth
from ..schemas import PeerFilePath
from ..schemas.claims import AuditPath, AuditResult
from .api import blueprint, operation

bp = blueprint("claims", __name__, "reports about holders' copies, audits of unproven claims")


def _ctx():
    return current_app.extensions["p2p"]


@operation(bp, "POST", "/peers/<peer_id>/files/<sha256>/corrupt", operation_id="reportCorrupt",
           answers={202: None}, errors=(403,), auth_mode=auth.CLIENT)
def report_corrupt(path: PeerFilePath):
    """A piece this holder served failed verification: the directory asks the holder to re-hash its copy.

    The report is not taken on its word: the holder's next heartbeat answer carries
    verify: [sha256] (at most once per audit interval per holder and file); a copy that no longer
    matches is quarantined and withdrawn by the holder itself. 404 if the peer lists no such file.
    """
    ctx = _ctx()
    ctx.auditing.report_corrupt(g.peer_id, path.peer_id, path.sha256, ctx.liveness.now())
    return "", 202


@operation(bp, "POST", "/peers/<peer_id>/files/<sha256>/verified", operation_id="reportVerified",
           answers={204: None}, errors=(403,), auth_mode=auth.CLIENT)
def report_verified(path: PeerFilePath):
    """Pieces this holder served verified: its claim to hold the file is proven (a refuted one stays refuted)."""
    ctx = _ctx()
    ctx.auditing.report_verified(g.peer_id, path.peer_id, path.sha256, ctx.liveness.now())
    return "", 204


@operation(bp, "POST", "/audits/<audit_id>", operation_id="answerAudit", answers={204: None}, errors=(409,),
           auth_mode=auth.PEER)
def answer_audit(path: AuditPath, body: AuditResult):
    """The auditor's answer: ok proves the target's claim, not ok refutes it (and a real copy is planned).

    404: no such audit; 409: the audit was given to another peer, or is answered already.
    """
    ctx = _ctx()
    ctx.auditing.answer(path.audit_id, g.peer_id, body.ok, body.detail, ctx.liveness.now())
    return "", 204
