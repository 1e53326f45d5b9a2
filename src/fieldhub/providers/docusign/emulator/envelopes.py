"""DocuSign's envelopes as the eSignature REST API v2.1 keeps them: create, read, list, void, recipients, the
recipient view for embedded signing, documents (signed, combined, certificate), a signing page a browser can
complete, reminders and expiry on the emulator's clock, and Connect notifications with HMAC and retries.

Shapes are the spec's (shared/specs/docusign/esignature.rest.swagger-v2.1.json: envelopeSummary, envelope,
envelopesInformation, envelopeUpdateSummary, viewUrl, recipients, errorDetails); the Connect body is the JSON
SIM sample in connect.schema-v2.json. DocuSign's own error codes and messages.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import html
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fieldhub.hub.emulator import pdfstamp
from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.hub.emulator.delivery import Outgoing

if TYPE_CHECKING:
    from fieldhub.providers.docusign.emulator import DocuSignEmulator

API = "/restapi/v2.1/accounts/{account_id}"
# Connect's retries for a notification that asked for acknowledgment (emulated seconds after each failure).
CONNECT_RETRIES = (60, 300, 900, 3600, 4 * 3600, 24 * 3600)
SIGNABLE = ("sent", "delivered")
DAY = 86400.0


class DocuSignError(Exception):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    def response(self) -> JSONResponse:
        return JSONResponse({"errorCode": self.code, "message": self.message}, status_code=self.status)


def stamp_time(seconds: float) -> str:
    """DocuSign's timestamps: UTC with seven fractional digits."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _flag(value: Any) -> bool:
    return str(value).lower() == "true"


class Envelopes:
    def __init__(self, emu: DocuSignEmulator) -> None:
        self.emu = emu

    # --- helpers ---------------------------------------------------------------------------------
    def now(self) -> float:
        return self.emu.clock.now()

    def auth(self, request: Request, account_id: str) -> str:
        user = self.emu.oauth.authenticate(request)
        if user is None:
            raise DocuSignError(
                "AUTHORIZATION_INVALID_TOKEN", "The access token provided is expired, revoked or malformed.", 401
            )
        if self.emu.account_id(user) != account_id:
            raise DocuSignError(
                "USER_DOES_NOT_BELONG_TO_SPECIFIED_ACCOUNT",
                "The specified User is not a member of the specified Account.",
            )
        return user.id

    def envelope(self, account_id: str, envelope_id: str) -> dict[str, Any]:
        env = self.emu.envelopes.get(envelope_id)
        if env is None or env["accountId"] != account_id:
            raise DocuSignError(
                "ENVELOPE_DOES_NOT_EXIST", "The envelope specified either does not exist or you have no rights to it."
            )
        return env

    def uri(self, env: dict[str, Any]) -> str:
        return f"/envelopes/{env['envelopeId']}"

    # --- the envelope as the API shows it ----------------------------------------------------------
    def signer_view(self, signer: dict[str, Any]) -> dict[str, Any]:
        out = {
            k: signer[k]
            for k in ("recipientId", "recipientIdGuid", "name", "email", "routingOrder", "status", "recipientType")
        }
        if signer.get("clientUserId"):
            out["clientUserId"] = signer["clientUserId"]
        for key in ("sentDateTime", "deliveredDateTime", "signedDateTime", "declinedDateTime", "declinedReason"):
            if signer.get(key):
                out[key] = signer[key]
        out["creationReason"] = "sender"
        return out

    def recipients_view(self, env: dict[str, Any]) -> dict[str, Any]:
        signers = [self.signer_view(s) for s in env["signers"]]
        return {"signers": signers, "recipientCount": str(len(signers)), "currentRoutingOrder": "1"}

    def view(self, env: dict[str, Any], include: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            k: env[k]
            for k in (
                "envelopeId",
                "status",
                "emailSubject",
                "emailBlurb",
                "createdDateTime",
                "lastModifiedDateTime",
                "statusChangedDateTime",
            )
        }
        for key in (
            "sentDateTime",
            "initialSentDateTime",
            "deliveredDateTime",
            "completedDateTime",
            "declinedDateTime",
            "voidedDateTime",
            "voidedReason",
            "transactionId",
            "expireDateTime",
        ):
            if env.get(key):
                out[key] = env[key]
        base = self.uri(env)
        out.update(
            {
                "envelopeUri": base,
                "documentsUri": f"{base}/documents",
                "documentsCombinedUri": f"{base}/documents/combined",
                "recipientsUri": f"{base}/recipients",
                "certificateUri": f"{base}/documents/certificate",
                "notificationUri": f"{base}/notification",
                "signingLocation": "online",
                "enableWetSign": "true",
                "allowMarkup": "false",
                "allowReassign": "true",
                "is21CFRPart11": "false",
                "purgeState": "unpurged",
                "envelopeIdStamping": "true",
                "autoNavigation": "true",
                "expireEnabled": "true" if env.get("expireDateTime") else "false",
                "sender": {
                    "userName": env["senderName"],
                    "userId": env["senderId"],
                    "accountId": env["accountId"],
                    "email": env["senderEmail"],
                },
            }
        )
        if "recipients" in include.split(","):
            out["recipients"] = self.recipients_view(env)
        return out

    # --- API routes ------------------------------------------------------------------------------
    async def create(self, request: Request, account_id: str) -> Response:
        try:
            user_id = self.auth(request, account_id)
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise DocuSignError(
                    "INVALID_REQUEST_BODY", "The request body is missing or improperly formatted."
                ) from None
            if not isinstance(body, dict):
                raise DocuSignError("INVALID_REQUEST_BODY", "The request body is missing or improperly formatted.")
            env = self._build(account_id, user_id, body)
        except DocuSignError as e:
            return e.response()
        self.emu.envelopes[env["envelopeId"]] = env
        if env["status"] == "sent":
            self._send(env)
        summary = {
            "envelopeId": env["envelopeId"],
            "uri": self.uri(env),
            "statusDateTime": env["statusChangedDateTime"],
            "status": env["status"],
        }
        return JSONResponse(summary, status_code=201)

    def _build(self, account_id: str, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        status = str(body.get("status") or "created").lower()
        if status not in ("created", "sent"):
            raise DocuSignError("INVALID_ENVELOPE_STATUS", f"Invalid envelope status: '{status}'.")
        documents: list[dict[str, Any]] = []
        for doc in body.get("documents") or []:
            try:
                pdf = base64.b64decode(doc.get("documentBase64") or "", validate=True)
            except (binascii.Error, ValueError):
                raise DocuSignError("INVALID_REQUEST_BODY", "The documentBase64 value is not valid base64.") from None
            if not pdf.startswith(b"%PDF"):
                raise DocuSignError(
                    "FORMAT_CONVERSION_ERROR", "The data could not be converted. Only PDF documents are accepted here."
                )
            documents.append(
                {
                    "documentId": str(doc.get("documentId") or len(documents) + 1),
                    "name": str(doc.get("name") or ""),
                    "pdf": pdf,
                }
            )
        signers = []
        for n, raw in enumerate((body.get("recipients") or {}).get("signers") or []):
            email, name = str(raw.get("email") or ""), str(raw.get("name") or "")
            if "@" not in email:
                raise DocuSignError(
                    "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT",
                    "The email address for the recipient is invalid. The recipient Id follows.",
                )
            if not name:
                raise DocuSignError("INVALID_USERNAME_FOR_RECIPIENT", "The user name for the recipient is invalid.")
            tabs = raw.get("tabs") or {}
            signers.append(
                {
                    "recipientId": str(raw.get("recipientId") or n + 1),
                    "recipientIdGuid": str(uuid.UUID(int=self.emu.random.getrandbits(128))),
                    "name": name,
                    "email": email,
                    "clientUserId": str(raw.get("clientUserId") or ""),
                    "routingOrder": str(raw.get("routingOrder") or "1"),
                    "recipientType": "signer",
                    "status": "created",
                    "anchors": [t.get("anchorString") for t in tabs.get("signHereTabs") or [] if t.get("anchorString")],
                    "dateAnchors": [
                        t.get("anchorString") for t in tabs.get("dateSignedTabs") or [] if t.get("anchorString")
                    ],
                    "token": secrets.token_urlsafe(24),
                }
            )
        if status == "sent" and (not documents or not signers or not body.get("emailSubject")):
            raise DocuSignError(
                "ENVELOPE_IS_INCOMPLETE",
                "The Envelope is not Complete. A Complete Envelope Requires Documents, Recipients, Tabs, and a Subject "
                "Line.",
            )
        for signer in signers:
            missing = [a for a in signer["anchors"] if not any(pdfstamp.find_anchors(d["pdf"], [a]) for d in documents)]
            if missing:
                raise DocuSignError(
                    "ANCHOR_TAB_STRING_NOT_FOUND",
                    f"The specified Anchor Tab string was not found in the document. Anchor Tab String [{missing[0]}] "
                    "not found.",
                )
        now = stamp_time(self.now())
        user = next(a for a in self.emu.oauth.accounts if a.id == user_id)
        notification = body.get("notification") or {}
        expirations = notification.get("expirations") or {}
        reminders = notification.get("reminders") or {}
        expire_days = (
            float(expirations.get("expireAfter") or 120) if _flag(expirations.get("expireEnabled", "true")) else 0
        )
        return {
            "envelopeId": str(uuid.UUID(int=self.emu.random.getrandbits(128))),
            "accountId": account_id,
            "senderId": user.id,
            "senderName": user.name,
            "senderEmail": user.email,
            "status": status,
            "emailSubject": str(body.get("emailSubject") or ""),
            "emailBlurb": str(body.get("emailBlurb") or ""),
            "transactionId": str(body.get("transactionId") or ""),
            "createdDateTime": now,
            "lastModifiedDateTime": now,
            "statusChangedDateTime": now,
            "documents": documents,
            "signers": signers,
            "eventNotification": body.get("eventNotification") or None,
            "expireAfterDays": expire_days,
            "reminderDelayDays": float(reminders.get("reminderDelay") or 0)
            if _flag(reminders.get("reminderEnabled"))
            else 0,
            "reminderFrequencyDays": float(reminders.get("reminderFrequency") or 0),
            "sentAt": 0.0,
            "remindedAt": 0.0,
            "signed": {},
            "certificate": b"",
        }

    def _send(self, env: dict[str, Any]) -> None:
        now = self.now()
        env["status"] = "sent"
        env["sentAt"] = now
        env["sentDateTime"] = env["initialSentDateTime"] = env["statusChangedDateTime"] = stamp_time(now)
        env["lastModifiedDateTime"] = env["sentDateTime"]
        if env["expireAfterDays"]:
            env["expireDateTime"] = stamp_time(now + env["expireAfterDays"] * DAY)
        for signer in env["signers"]:
            signer["status"] = "sent"
            signer["sentDateTime"] = env["sentDateTime"]
            if not signer["clientUserId"]:
                self.email(env, signer, "Please DocuSign: " + env["emailSubject"])
        self.notify(env, "envelope-sent")

    def email(self, env: dict[str, Any], signer: dict[str, Any], subject: str) -> None:
        self.emu.inbox.append(
            {
                "to": signer["email"],
                "name": signer["name"],
                "subject": subject,
                "envelopeId": env["envelopeId"],
                "link": f"/Signing/EmailStart.aspx?a={signer['token']}",
                "at": stamp_time(self.now()),
            }
        )

    async def get(self, request: Request, account_id: str, envelope_id: str) -> Response:
        try:
            self.auth(request, account_id)
            env = self.envelope(account_id, envelope_id)
        except DocuSignError as e:
            return e.response()
        self.emu.run_due()
        return JSONResponse(self.view(env, request.query_params.get("include", "")))

    async def list(self, request: Request, account_id: str) -> Response:
        try:
            self.auth(request, account_id)
        except DocuSignError as e:
            return e.response()
        self.emu.run_due()
        q = request.query_params
        ids = {i for i in q.get("envelope_ids", "").split(",") if i}
        txns = {t for t in q.get("transaction_ids", "").split(",") if t}
        since = q.get("from_date", "")
        if not (ids or txns or since):
            return DocuSignError(
                "INVALID_REQUEST_PARAMETER",
                "The request contained at least one invalid parameter. A value for 'from_date', 'envelope_ids', or "
                "'transaction_ids' must be set.",
            ).response()
        found = [
            e
            for e in self.emu.envelopes.values()
            if e["accountId"] == account_id
            and (not ids or e["envelopeId"] in ids)
            and (not txns or e["transactionId"] in txns)
            and (not since or e["lastModifiedDateTime"] >= _normal(since))
        ]
        found.sort(key=lambda e: e["createdDateTime"])
        views = [self.view(e, q.get("include", "")) for e in found]
        body: dict[str, Any] = {
            "resultSetSize": str(len(views)),
            "totalSetSize": str(len(views)),
            "startPosition": "0",
            "endPosition": str(max(0, len(views) - 1)),
            "envelopes": views,
        }
        return JSONResponse(body)

    async def update(self, request: Request, account_id: str, envelope_id: str) -> Response:
        try:
            self.auth(request, account_id)
            env = self.envelope(account_id, envelope_id)
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise DocuSignError(
                    "INVALID_REQUEST_BODY", "The request body is missing or improperly formatted."
                ) from None
            if _flag(request.query_params.get("resend_envelope")):
                if env["status"] not in SIGNABLE:
                    raise DocuSignError("ENVELOPE_CANNOT_RESEND", "The envelope cannot be resent in its current state.")
                for signer in env["signers"]:
                    if signer["status"] in SIGNABLE and not signer["clientUserId"]:
                        self.email(env, signer, "Reminder: " + env["emailSubject"])
            status = str(body.get("status") or "").lower()
            if status == "voided":
                if env["status"] not in SIGNABLE:
                    raise DocuSignError(
                        "ENVELOPE_CANNOT_VOID_INVALID_STATE",
                        "Only envelopes in the 'Sent' or 'Delivered' states may be voided.",
                    )
                reason = str(body.get("voidedReason") or "")
                if not reason:
                    raise DocuSignError("VOIDED_REASON_REQUIRED", "A voided reason is required to void an envelope.")
                self.void(env, reason)
            elif status == "sent" and env["status"] == "created":
                self._send(env)
            elif status and status != env["status"]:
                raise DocuSignError("INVALID_ENVELOPE_STATUS", f"Invalid envelope status: '{status}'.")
        except DocuSignError as e:
            return e.response()
        return JSONResponse({"envelopeId": env["envelopeId"]})

    def void(self, env: dict[str, Any], reason: str) -> None:
        now = stamp_time(self.now())
        env.update(
            status="voided",
            voidedDateTime=now,
            voidedReason=reason,
            statusChangedDateTime=now,
            lastModifiedDateTime=now,
        )
        self.notify(env, "envelope-voided")

    async def recipients(self, request: Request, account_id: str, envelope_id: str) -> Response:
        try:
            self.auth(request, account_id)
            env = self.envelope(account_id, envelope_id)
        except DocuSignError as e:
            return e.response()
        return JSONResponse(self.recipients_view(env))

    async def recipient_view(self, request: Request, account_id: str, envelope_id: str) -> Response:
        try:
            self.auth(request, account_id)
            env = self.envelope(account_id, envelope_id)
            try:
                body = json.loads(await request.body() or b"{}")
            except ValueError:
                raise DocuSignError(
                    "INVALID_REQUEST_BODY", "The request body is missing or improperly formatted."
                ) from None
            return_url = str(body.get("returnUrl") or "")
            if not return_url:
                raise DocuSignError("INVALID_REQUEST_PARAMETER", "The returnUrl is required.")
            if len(return_url) > 470:
                raise DocuSignError("INVALID_REQUEST_PARAMETER", "The returnUrl is longer than 470 characters.")
            signer = next(
                (
                    s
                    for s in env["signers"]
                    if s["clientUserId"]
                    and s["clientUserId"] == str(body.get("clientUserId") or "")
                    and s["email"].lower() == str(body.get("email") or "").lower()
                    and s["name"] == str(body.get("userName") or "")
                ),
                None,
            )
            if signer is None:
                raise DocuSignError(
                    "UNKNOWN_ENVELOPE_RECIPIENT",
                    "The recipient you have identified is not a valid recipient of the specified envelope.",
                )
            if env["status"] not in SIGNABLE:
                raise DocuSignError(
                    "ENVELOPE_INVALID_STATUS", f"Invalid envelope status. Envelope status is {env['status']}."
                )
        except DocuSignError as e:
            return e.response()
        view = secrets.token_urlsafe(24)
        # A recipient view URL is good once, for five minutes.
        self.emu.views[view] = {"token": signer["token"], "returnUrl": return_url, "expires": self.now() + 300}
        base = str(request.base_url).rstrip("/")
        return JSONResponse({"url": f"{base}/Signing/MTRedeem/v1/{view}?slt=1"}, status_code=201)

    async def documents(self, request: Request, account_id: str, envelope_id: str) -> Response:
        try:
            self.auth(request, account_id)
            env = self.envelope(account_id, envelope_id)
        except DocuSignError as e:
            return e.response()
        base = self.uri(env)
        docs = [
            {
                "documentId": d["documentId"],
                "name": d["name"],
                "type": "content",
                "uri": f"{base}/documents/{d['documentId']}",
                "order": str(n + 1),
                "pages": str(pdfstamp.page_count(d["pdf"])),
                "display": "inline",
                "includeInDownload": "true",
                "signerMustAcknowledge": "no_interaction",
                "authoritativeCopy": "false",
                "templateRequired": "false",
            }
            for n, d in enumerate(env["documents"])
        ]
        docs.append(
            {
                "documentId": "certificate",
                "name": "Summary",
                "type": "summary",
                "uri": f"{base}/documents/certificate",
                "order": str(len(docs) + 1),
                "display": "inline",
                "includeInDownload": "true",
                "signerMustAcknowledge": "no_interaction",
                "authoritativeCopy": "false",
                "templateRequired": "false",
            }
        )
        return JSONResponse({"envelopeId": env["envelopeId"], "envelopeDocuments": docs})

    async def document(self, request: Request, account_id: str, envelope_id: str, document_id: str) -> Response:
        try:
            self.auth(request, account_id)
            env = self.envelope(account_id, envelope_id)
            pdf = self.document_pdf(env, document_id, _flag(request.query_params.get("certificate")))
        except DocuSignError as e:
            return e.response()
        name = "certificate" if document_id == "certificate" else document_id
        return Response(
            pdf,
            media_type="application/pdf",
            headers={"Content-Disposition": f'file; filename="{name}.pdf"; documentid="{document_id}"'},
        )

    def document_pdf(self, env: dict[str, Any], document_id: str, with_certificate: bool) -> bytes:
        docs = {d["documentId"]: env["signed"].get(d["documentId"]) or d["pdf"] for d in env["documents"]}
        if document_id == "certificate":
            return self.certificate(env)
        if document_id == "combined":
            parts = list(docs.values()) + ([self.certificate(env)] if with_certificate else [])
            return pdfstamp.combine(parts)
        if document_id in docs:
            return docs[document_id]
        if document_id == "archive":
            raise DocuSignError("INVALID_REQUEST_PARAMETER", "Archive downloads are not offered by this emulator.")
        raise DocuSignError("DOCUMENT_DOES_NOT_EXIST", "The document specified was not found.")

    def certificate(self, env: dict[str, Any]) -> bytes:
        if env["certificate"] and env["status"] in ("completed", "declined", "voided"):
            return env["certificate"]
        rows = [
            ("Envelope Id", env["envelopeId"]),
            ("Subject", env["emailSubject"]),
            ("Status", env["status"].capitalize()),
            ("Envelope Originator", f"{env['senderName']} <{env['senderEmail']}>"),
            ("Sent", env.get("sentDateTime", "")),
        ]
        signers = []
        for s in env["signers"]:
            signers += [
                ("Signer", f"{s['name']} <{s['email']}>"),
                ("Status", s["status"].capitalize()),
                ("Signature", s.get("signedName", "")),
                ("Sent", s.get("sentDateTime", "")),
                ("Viewed", s.get("deliveredDateTime", "")),
                ("Signed", s.get("signedDateTime", "")),
                ("Declined", s.get("declinedReason", "")),
                ("Using IP Address", s.get("ip", "")),
            ]
        pdf = pdfstamp.certificate("Certificate Of Completion", [("Envelope", rows), ("Signer Events", signers)])
        if env["status"] in ("completed", "declined", "voided"):
            env["certificate"] = pdf
        return pdf

    # --- the signing ceremony (the pages a signer's browser sees) ----------------------------------
    def _signer(self, token: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        for env in self.emu.envelopes.values():
            for signer in env["signers"]:
                if secrets.compare_digest(signer["token"], token):
                    return env, signer
        return None

    async def redeem(self, request: Request, view: str) -> Response:
        """The recipient view URL: good once and for five minutes, it opens the signing page for that signer."""
        entry = self.emu.views.pop(view, None)
        if entry is None or entry["expires"] < self.now():
            return _page("This link has expired", "<p>Ask the sender for a new signing link.</p>", status=410)
        self.emu.sessions[entry["token"]] = entry["returnUrl"]
        return RedirectResponse(f"{str(request.base_url).rstrip('/')}/Signing/?ti={entry['token']}", status_code=302)

    async def email_start(self, request: Request) -> Response:
        token = request.query_params.get("a", "")
        found = self._signer(token)
        if found is None or found[1]["clientUserId"]:
            return _page("This link is not valid", "<p>Check the link in your email.</p>", status=404)
        return RedirectResponse(f"{str(request.base_url).rstrip('/')}/Signing/?ti={token}", status_code=302)

    async def signing_page(self, request: Request) -> Response:
        token = request.query_params.get("ti", "")
        found = self._signer(token)
        if found is None or (found[1]["clientUserId"] and token not in self.emu.sessions):
            return _page("This link is not valid", "<p>Check the link in your email.</p>", status=404)
        env, signer = found
        if env["status"] == "voided":
            reason = html.escape(env.get("voidedReason", ""))
            return _page("This envelope was voided", f"<p>The sender voided it: {reason}</p>", status=410)
        if signer["status"] in ("completed", "declined") or env["status"] not in SIGNABLE:
            return _page("Nothing to sign", f"<p>You have already {html.escape(signer['status'])} this document.</p>")
        if signer["status"] == "sent":
            now = stamp_time(self.now())
            signer.update(status="delivered", deliveredDateTime=now)
            if env["status"] == "sent":
                env.update(
                    status="delivered", deliveredDateTime=now, statusChangedDateTime=now, lastModifiedDateTime=now
                )
                self.notify(env, "envelope-delivered", signer)
            self.notify(env, "recipient-delivered", signer)
        base = html.escape(str(request.base_url).rstrip("/"))
        t = html.escape(token)
        body = f"""
<p class=lead>{html.escape(env["senderName"])} sent you a document to review and sign.</p>
<p><strong>{html.escape(env["emailSubject"])}</strong></p>
{f"<p class=blurb>{html.escape(env['emailBlurb'])}</p>" if env["emailBlurb"] else ""}
<p><a href="{base}/Signing/document?ti={t}" target=_blank>Review the document (PDF)</a></p>
<form method=post action="{base}/Signing/sign" class=box>
<input type=hidden name=ti value="{t}">
<label for=signature>Adopt your signature: type your full name</label>
<input id=signature name=signature value="{html.escape(signer["name"])}" required autocomplete=name>
<p class=fine>By selecting Sign, I agree that the signature will be the electronic representation of my signature.</p>
<button type=submit class=primary>Sign</button>
</form>
<form method=post action="{base}/Signing/decline" class=box>
<input type=hidden name=ti value="{t}">
<label for=reason>Decline to sign: tell the sender why</label>
<textarea id=reason name=reason rows=2 required></textarea>
<button type=submit class=danger>Decline</button>
</form>"""
        return _page("Please review and sign", body)

    async def signing_document(self, request: Request) -> Response:
        found = self._signer(request.query_params.get("ti", ""))
        if found is None:
            return _page("This link is not valid", "", status=404)
        env, _ = found
        return Response(self.document_pdf(env, "combined", False), media_type="application/pdf")

    async def _form(self, request: Request) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]] | Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        found = self._signer(form.get("ti", ""))
        if found is None:
            return _page("This link is not valid", "", status=404)
        env, signer = found
        if env["status"] not in SIGNABLE or signer["status"] not in SIGNABLE + ("created",):
            return _page("Nothing to sign", "<p>This envelope can no longer be signed.</p>", status=409)
        return env, signer, form

    def _after(self, request: Request, signer: dict[str, Any], event: str, title: str, text: str) -> Response:
        back = self.emu.sessions.pop(signer["token"], "") if signer["clientUserId"] else ""
        if back:
            sep = "&" if "?" in back else "?"
            return RedirectResponse(f"{back}{sep}{urlencode({'event': event})}", status_code=302)
        return _page(title, f"<p>{text}</p>")

    async def sign(self, request: Request) -> Response:
        got = await self._form(request)
        if isinstance(got, Response):
            return got
        env, signer, form = got
        name = " ".join(form.get("signature", "").split())[:100]
        if not name:
            return _page("Type your name to sign", "<p>Go back and type your full name.</p>", status=400)
        now = self.now()
        stamp = stamp_time(now)
        signer.update(
            status="completed", signedDateTime=stamp, signedName=name, ip=request.client.host if request.client else ""
        )
        day = datetime.fromtimestamp(now, UTC).strftime("%-m/%-d/%Y")
        for doc in env["documents"]:
            marks = {a: name for a in signer["anchors"]} | {a: day for a in signer["dateAnchors"]}
            source = env["signed"].get(doc["documentId"]) or doc["pdf"]
            env["signed"][doc["documentId"]] = pdfstamp.stamp(
                source, marks, header=f"Docusign Envelope ID: {env['envelopeId'].upper()}"
            )
        self.notify(env, "recipient-completed", signer)
        if all(s["status"] == "completed" for s in env["signers"]):
            env.update(
                status="completed", completedDateTime=stamp, statusChangedDateTime=stamp, lastModifiedDateTime=stamp
            )
            self.notify(env, "envelope-completed")
        return self._after(
            request,
            signer,
            "signing_complete",
            "You're done signing",
            "You'll receive an email with a copy of the completed document.",
        )

    async def decline(self, request: Request) -> Response:
        got = await self._form(request)
        if isinstance(got, Response):
            return got
        env, signer, form = got
        reason = form.get("reason", "").strip()[:2000]
        if not reason:
            return _page("Tell the sender why", "<p>Go back and give a reason to decline.</p>", status=400)
        stamp = stamp_time(self.now())
        signer.update(status="declined", declinedDateTime=stamp, declinedReason=reason)
        env.update(status="declined", declinedDateTime=stamp, statusChangedDateTime=stamp, lastModifiedDateTime=stamp)
        self.notify(env, "recipient-declined", signer)
        self.notify(env, "envelope-declined")
        return self._after(request, signer, "decline", "You declined to sign", "The sender has been told.")

    # --- time: reminders and expiry -----------------------------------------------------------------
    def run_due(self) -> int:
        now, ran = self.now(), 0
        for env in list(self.emu.envelopes.values()):
            if env["status"] not in SIGNABLE:
                continue
            if env["expireAfterDays"] and now >= env["sentAt"] + env["expireAfterDays"] * DAY:
                self.void(env, "Envelope has expired.")
                ran += 1
                continue
            delay, every = env["reminderDelayDays"], env["reminderFrequencyDays"]
            if delay:
                due = env["sentAt"] + delay * DAY
                if env["remindedAt"]:
                    due = env["remindedAt"] + max(every, 1) * DAY if every else float("inf")
                if now >= due:
                    env["remindedAt"] = now
                    for signer in env["signers"]:
                        if signer["status"] in SIGNABLE and not signer["clientUserId"]:
                            self.email(env, signer, "Reminder: " + env["emailSubject"])
                    ran += 1
        return ran

    # --- Connect -----------------------------------------------------------------------------------
    def notify(self, env: dict[str, Any], event: str, signer: dict[str, Any] | None = None) -> None:
        """A Connect message for the envelope's eventNotification, if it asked for this event."""
        hook = env.get("eventNotification")
        if not hook or not hook.get("url"):
            return
        wanted = set(hook.get("events") or [])
        legacy = {str(e.get("envelopeEventStatusCode", "")).lower() for e in hook.get("envelopeEvents") or []}
        if wanted and event not in wanted and event.split("-", 1)[1] not in legacy:
            return
        data = hook.get("eventData") or {}
        include = set(data.get("includeData") or [])
        summary = self.view(env, "recipients" if "recipients" in include else "")
        payload = {
            "event": event,
            "apiVersion": "v2.1",
            "uri": f"/restapi/v2.1/accounts/{env['accountId']}/envelopes/{env['envelopeId']}",
            "retryCount": 0,
            "configurationId": 10_000_000 + sum(env["envelopeId"].encode()) % 1000,
            "generatedDateTime": stamp_time(self.now()),
            "data": {
                "accountId": env["accountId"],
                "userId": env["senderId"],
                "envelopeId": env["envelopeId"],
                "recipientId": signer["recipientId"] if signer else "",
                "envelopeSummary": summary,
            },
        }
        body = json.dumps(payload, indent=2).encode()
        headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "DocuSign Connect"}
        if _flag(hook.get("includeHMAC")):
            digest = hmac.new(self.emu.config.webhook_secret.encode(), body, hashlib.sha256).digest()
            headers["X-DocuSign-Signature-1"] = base64.b64encode(digest).decode()
            headers["X-Authorization-Digest"] = "HMACSHA256"
        self.emu.connect.enqueue(Outgoing(str(hook["url"]), body, headers, kind=event))

    def install(self) -> None:
        app, api = self.emu.app, API.replace("{account_id}", "{account_id}")
        app.add_api_route(f"{api}/envelopes", self.create, methods=["POST"])
        app.add_api_route(f"{api}/envelopes", self.list, methods=["GET"])
        app.add_api_route(f"{api}/envelopes/{{envelope_id}}", self.get, methods=["GET"])
        app.add_api_route(f"{api}/envelopes/{{envelope_id}}", self.update, methods=["PUT"])
        app.add_api_route(f"{api}/envelopes/{{envelope_id}}/recipients", self.recipients, methods=["GET"])
        app.add_api_route(f"{api}/envelopes/{{envelope_id}}/views/recipient", self.recipient_view, methods=["POST"])
        app.add_api_route(f"{api}/envelopes/{{envelope_id}}/documents", self.documents, methods=["GET"])
        app.add_api_route(f"{api}/envelopes/{{envelope_id}}/documents/{{document_id}}", self.document, methods=["GET"])
        app.add_api_route("/Signing/MTRedeem/v1/{view}", self.redeem, methods=["GET"])
        app.add_api_route("/Signing/EmailStart.aspx", self.email_start, methods=["GET"])
        app.add_api_route("/Signing/", self.signing_page, methods=["GET"])
        app.add_api_route("/Signing/document", self.signing_document, methods=["GET"])
        app.add_api_route("/Signing/sign", self.sign, methods=["POST"])
        app.add_api_route("/Signing/decline", self.decline, methods=["POST"])

        async def inbox(to: str = "") -> list[dict[str, Any]]:
            return [m for m in self.emu.inbox if not to or m["to"].lower() == to.lower()]

        async def tick() -> dict[str, Any]:
            ran = self.run_due()
            await self.emu.connect.flush()
            return {"ran": ran, "now": self.now()}

        app.add_api_route(f"{CONTROL_PREFIX}/inbox", inbox, methods=["GET"])
        app.add_api_route(f"{CONTROL_PREFIX}/tick", tick, methods=["POST"])


def _normal(value: str) -> str:
    """A from_date as DocuSign's stamps compare: ISO, UTC."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return stamp_time(moment.timestamp())


STYLE = """body{font-family:system-ui,sans-serif;margin:0;background:#f4f4f4;color:#1e1e1e}
header{background:#4c00ff;color:#fff;padding:.8rem 1.2rem;font-weight:700;letter-spacing:.02em}
main{max-width:640px;margin:1.5rem auto;background:#fff;padding:1.2rem 1.4rem;border-radius:6px;box-sizing:border-box}
@media(max-width:680px){main{margin:0;border-radius:0}}
h1{font-size:1.3rem}.lead{color:#444}.box{border-top:1px solid #ddd;padding-top:1rem;margin-top:1rem}
label{display:block;font-weight:600;margin-bottom:.4rem}input,textarea{width:100%;box-sizing:border-box;font:inherit;
padding:.55rem;border:1px solid #999;border-radius:4px}#signature{font-family:cursive,serif;font-size:1.4rem}
button{margin-top:.7rem;font:inherit;padding:.55rem 1.4rem;border-radius:4px;border:0;cursor:pointer}
.primary{background:#ffcc22;color:#000;font-weight:700}.danger{background:#fff;border:1px solid #b00;color:#b00}
.fine{font-size:.8rem;color:#666}"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1"><title>{html.escape(title)} | Docusign</title>
<style>{STYLE}</style></head><body><header>Docusign</header><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"""
    return HTMLResponse(page, status_code=status)
