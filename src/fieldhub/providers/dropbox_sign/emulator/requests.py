"""Dropbox Sign's signature requests as API v3 keeps them: send (email) and create_embedded, get, list, cancel,
remind, files, the embedded sign URL, a signing page a browser can complete, expiry on the emulator's clock, and
event callbacks (multipart with the JSON in `json`, event_hash = hex HMAC-SHA256(API key, event_time + event_type))
retried until the answer is exactly `Hello API Event Received`.

Shapes are the spec's (shared/specs/hellosign/openapi.yaml: SignatureRequestGetResponse, ...ListResponse,
EmbeddedSignUrlResponse, ErrorResponse, EventCallbackRequest); errors are Dropbox Sign's error_name/error_msg.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import json
import re
import secrets
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from fieldhub.hub.emulator import pdfstamp
from fieldhub.hub.emulator.core import CONTROL_PREFIX
from fieldhub.hub.emulator.delivery import Outgoing

if TYPE_CHECKING:
    from fieldhub.providers.dropbox_sign.emulator import DropboxSignEmulator

REPLY = "Hello API Event Received"
# About three days of exponential backoff, as Dropbox Sign retries a callback that was not answered right.
RETRIES = (60, 300, 900, 3600, 3 * 3600, 8 * 3600, 16 * 3600, 24 * 3600)
TEXT_TAG = re.compile(r"\[sig\|req\|signer(\d+)\]")


class SignError(Exception):
    def __init__(self, status: int, name: str, message: str, path: str = "") -> None:
        super().__init__(message)
        self.status, self.name, self.message, self.path = status, name, message, path

    def response(self) -> JSONResponse:
        error: dict[str, Any] = {"error_msg": self.message, "error_name": self.name}
        if self.path:
            error["error_path"] = self.path
        return JSONResponse({"error": error}, status_code=self.status)


def _truthy(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def _unflatten(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A form's fields as the API reads them: `signers[0][name]` nests, `files[0]` lists, a JSON-text value (the
    SDK sends `signers` as JSON in multipart) is decoded."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        if not parts:
            continue
        if isinstance(value, str) and value[:1] in "[{":
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        node: Any = out
        for here in parts[:-1]:
            node = node.setdefault(here, {})
        node[parts[-1]] = value
    return {k: _listify(v) for k, v in out.items()}


def _listify(value: Any) -> Any:
    if isinstance(value, dict):
        if value and all(k.isdigit() for k in value):
            return [_listify(value[k]) for k in sorted(value, key=int)]
        return {k: _listify(v) for k, v in value.items()}
    return value


class Requests:
    def __init__(self, emu: DropboxSignEmulator) -> None:
        self.emu = emu

    def now(self) -> int:
        return int(self.emu.clock.now())

    # --- auth: the API key (Basic, key as user name) or an OAuth access token (Bearer) ----------
    def auth(self, request: Request) -> str:
        account = self.emu.caller(request)
        if account is None:
            raise SignError(401, "unauthorized", "Unauthorized api key")
        return account

    async def _body(self, request: Request) -> tuple[dict[str, Any], list[bytes]]:
        kind = request.headers.get("content-type", "")
        if kind.startswith("multipart/form-data"):
            form = await request.form()
            files: list[bytes] = []
            pairs: list[tuple[str, Any]] = []
            for key, value in form.multi_items():
                if hasattr(value, "read"):
                    files.append(await value.read())
                else:
                    pairs.append((key, value))
            return _unflatten(pairs), files
        if kind.startswith("application/x-www-form-urlencoded"):
            raw = parse_qs((await request.body()).decode(), keep_blank_values=True)
            return _unflatten([(k, v[-1]) for k, v in raw.items()]), []
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            raise SignError(400, "bad_request", "The request body is not valid JSON.") from None
        if not isinstance(body, dict):
            raise SignError(400, "bad_request", "The request body must be an object.")
        return body, []

    # --- the request as the API shows it -----------------------------------------------------------
    def view(self, req: dict[str, Any]) -> dict[str, Any]:
        sid = req["signature_request_id"]
        return {
            "test_mode": req["test_mode"],
            "signature_request_id": sid,
            "requester_email_address": req["requester"],
            "title": req["title"],
            "original_title": req["title"],
            "subject": req["subject"],
            "message": req["message"],
            "metadata": req["metadata"],
            "created_at": req["created_at"],
            "expires_at": req["expires_at"],
            "is_complete": req["is_complete"],
            "is_declined": req["is_declined"],
            "has_error": False,
            "files_url": f"https://api.hellosign.com/v3/signature_request/files/{sid}",
            "signing_url": None if req["embedded"] else f"https://app.hellosign.com/sign/{sid}",
            "details_url": f"https://app.hellosign.com/home/manage?guid={sid}",
            "cc_email_addresses": [],
            "signing_redirect_url": req["signing_redirect_url"] or None,
            "final_copy_uri": f"/v3/signature_request/final_copy/{sid}" if req["is_complete"] else None,
            "template_ids": None,
            "custom_fields": [],
            "attachments": [],
            "response_data": [],
            "signatures": [self.signature_view(s) for s in req["signatures"]],
        }

    def signature_view(self, sig: dict[str, Any]) -> dict[str, Any]:
        return {
            "signature_id": sig["signature_id"],
            "signer_email_address": sig["email"],
            "signer_name": sig["name"],
            "signer_role": None,
            "order": sig["order"],
            "status_code": sig["status_code"],
            "decline_reason": sig["decline_reason"],
            "signed_at": sig["signed_at"],
            "last_viewed_at": sig["last_viewed_at"],
            "last_reminded_at": sig["last_reminded_at"],
            "has_pin": False,
            "has_sms_auth": False,
            "has_sms_delivery": False,
            "sms_phone_number": None,
            "reassigned_by": None,
            "reassignment_reason": None,
            "error": None,
        }

    def find(self, account: str, sid: str) -> dict[str, Any]:
        req = self.emu.signature_requests.get(sid)
        if req is None or req["account"] != account:
            raise SignError(404, "not_found", "Not found")
        if req["canceled"]:
            raise SignError(410, "deleted", "This resource has been deleted")
        return req

    # --- API -----------------------------------------------------------------------------------
    async def send(self, request: Request) -> Response:
        return await self._create(request, embedded=False)

    async def create_embedded(self, request: Request) -> Response:
        return await self._create(request, embedded=True)

    async def _create(self, request: Request, *, embedded: bool) -> Response:
        try:
            account = self.auth(request)
            body, files = await self._body(request)
            req = self._build(account, body, files, embedded)
        except SignError as e:
            return e.response()
        self.emu.signature_requests[req["signature_request_id"]] = req
        self.event(req, "signature_request_sent")
        if not embedded:
            for sig in req["signatures"]:
                self.emu.inbox.append(
                    {
                        "to": sig["email"],
                        "name": sig["name"],
                        "subject": req["subject"] or req["title"],
                        "signature_request_id": req["signature_request_id"],
                        "link": f"/sign/{sig['token']}",
                        "at": self.now(),
                    }
                )
        return JSONResponse({"signature_request": self.view(req)})

    def _build(self, account: str, body: dict[str, Any], files: list[bytes], embedded: bool) -> dict[str, Any]:
        if embedded and not body.get("client_id"):
            raise SignError(400, "bad_request", "Missing parameter: client_id", "client_id")
        if body.get("client_id") and body["client_id"] != self.emu.config.client_id:
            raise SignError(400, "bad_request", f"Invalid client_id: {body['client_id']}", "client_id")
        if body.get("file_urls") and not files:
            raise SignError(400, "bad_request", "This emulator takes files[], not file_urls[].", "file_urls")
        if not files:
            raise SignError(400, "bad_request", "Must specify files[] or file_urls[]", "files")
        for pdf in files:
            if not pdf.startswith(b"%PDF"):
                raise SignError(400, "file_error", "The file could not be converted: only PDF is taken here.")
        signers = body.get("signers") or []
        if not isinstance(signers, list) or not signers:
            raise SignError(400, "bad_request", "Missing parameter: signers", "signers")
        signatures = []
        for n, signer in enumerate(signers):
            email, name = str(signer.get("email_address") or ""), str(signer.get("name") or "")
            if "@" not in email:
                raise SignError(400, "bad_request", f"Invalid email address: {email}", f"signers[{n}].email_address")
            if not name:
                raise SignError(400, "bad_request", "Missing parameter: name", f"signers[{n}].name")
            signatures.append(
                {
                    "signature_id": secrets.token_hex(16),
                    "email": email,
                    "name": name,
                    "order": int(signer.get("order") or n),
                    "status_code": "awaiting_signature",
                    "decline_reason": None,
                    "signed_at": None,
                    "last_viewed_at": None,
                    "last_reminded_at": None,
                    "token": secrets.token_urlsafe(24),
                    "signed_name": "",
                }
            )
        fields = body.get("form_fields_per_document") or []
        flat = [f for doc in fields for f in (doc if isinstance(doc, list) else [doc]) if isinstance(f, dict)]
        places = [f for f in flat if f.get("type") == "signature"]
        if not places and not _truthy(body.get("use_text_tags")):
            raise SignError(
                400,
                "bad_request",
                "Each signer needs a signature field: form_fields_per_document or use_text_tags.",
                "form_fields_per_document",
            )
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict) or len(metadata) > 10:
            raise SignError(400, "bad_request", "metadata takes up to 10 keys.", "metadata")
        expires = body.get("expires_at")
        now = self.now()
        return {
            "signature_request_id": secrets.token_hex(20),
            "account": account,
            "requester": self.emu.email_of(account),
            "title": str(body.get("title") or ""),
            "subject": str(body.get("subject") or ""),
            "message": str(body.get("message") or ""),
            "metadata": {str(k): str(v) for k, v in metadata.items()},
            "test_mode": _truthy(body.get("test_mode")),
            "created_at": now,
            "expires_at": int(expires) if expires else None,
            "is_complete": False,
            "is_declined": False,
            "canceled": False,
            "embedded": embedded,
            "signing_redirect_url": str(body.get("signing_redirect_url") or ""),
            "files": files,
            "fields": places,
            "date_fields": [f for f in flat if f.get("type") == "date_signed"],
            "signatures": signatures,
            "signed": [],
            "audit": [],
        }

    async def get(self, request: Request, signature_request_id: str) -> Response:
        try:
            req = self.find(self.auth(request), signature_request_id)
        except SignError as e:
            return e.response()
        self.emu.run_due()
        return JSONResponse({"signature_request": self.view(req)})

    async def list_requests(self, request: Request) -> Response:
        try:
            account = self.auth(request)
        except SignError as e:
            return e.response()
        q = request.query_params
        page, size = int(q.get("page", "1") or 1), min(100, int(q.get("page_size", "20") or 20))
        query = q.get("query", "")
        found = [r for r in self.emu.signature_requests.values() if r["account"] == account and not r["canceled"]]
        if query.startswith("metadata:"):
            key, _, value = query.removeprefix("metadata:").partition("=")
            found = [r for r in found if r["metadata"].get(key) == value]
        found.sort(key=lambda r: r["created_at"], reverse=True)
        shown = found[(page - 1) * size : page * size]
        return JSONResponse(
            {
                "signature_requests": [self.view(r) for r in shown],
                "list_info": {
                    "num_pages": max(1, -(-len(found) // size)),
                    "num_results": len(found),
                    "page": page,
                    "page_size": size,
                },
            }
        )

    async def cancel(self, request: Request, signature_request_id: str) -> Response:
        try:
            req = self.find(self.auth(request), signature_request_id)
            if req["is_complete"] or req["is_declined"]:
                raise SignError(400, "bad_request", "This request can no longer be canceled.")
        except SignError as e:
            return e.response()
        req["canceled"] = True
        self.event(req, "signature_request_canceled")
        return Response(status_code=200)

    async def remind(self, request: Request, signature_request_id: str) -> Response:
        try:
            req = self.find(self.auth(request), signature_request_id)
            body, _ = await self._body(request)
            sig = next(
                (s for s in req["signatures"] if s["email"].lower() == str(body.get("email_address", "")).lower()), None
            )
            if sig is None:
                raise SignError(400, "bad_request", "No signer with that email address.", "email_address")
            if req["embedded"]:
                raise SignError(400, "bad_request", "Embedded signature requests can't be reminded.")
        except SignError as e:
            return e.response()
        sig["last_reminded_at"] = self.now()
        self.emu.inbox.append(
            {
                "to": sig["email"],
                "name": sig["name"],
                "subject": "Reminder: " + req["title"],
                "signature_request_id": req["signature_request_id"],
                "link": f"/sign/{sig['token']}",
                "at": self.now(),
            }
        )
        self.event(req, "signature_request_remind", sig)
        return JSONResponse({"signature_request": self.view(req)})

    async def files(self, request: Request, signature_request_id: str) -> Response:
        try:
            req = self.find(self.auth(request), signature_request_id)
            kind = request.query_params.get("file_type", "pdf")
            if kind != "pdf":
                raise SignError(400, "bad_request", "This emulator gives file_type=pdf only.", "file_type")
        except SignError as e:
            return e.response()
        return Response(
            self.pdf(req),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{req["title"] or "files"}.pdf"'},
        )

    def pdf(self, req: dict[str, Any], *, audit: bool = True) -> bytes:
        docs = req["signed"] or req["files"]
        parts = list(docs) + ([self.audit_trail(req)] if audit and (req["is_complete"] or req["is_declined"]) else [])
        return pdfstamp.combine(parts)

    def audit_trail(self, req: dict[str, Any]) -> bytes:
        rows = [
            ("Title", req["title"]),
            ("Document ID", req["signature_request_id"]),
            ("Status", "Signed" if req["is_complete"] else "Declined" if req["is_declined"] else "Out for signature"),
        ]
        signers = []
        for s in req["signatures"]:
            signers += [
                ("Signer", f"{s['name']} <{s['email']}>"),
                ("Signed as", s["signed_name"]),
                ("Status", s["status_code"]),
                ("Decline reason", s["decline_reason"] or ""),
            ]
        return pdfstamp.certificate("Audit trail", [("Document", rows), ("Signers", signers)])

    async def sign_url(self, request: Request, signature_id: str) -> Response:
        try:
            account = self.auth(request)
            found = self.signature(signature_id=signature_id)
            if found is None or found[0]["account"] != account:
                raise SignError(404, "not_found", "Not found")
            req, sig = found
            if not req["embedded"]:
                raise SignError(400, "bad_request", "This signature request is not embedded.")
            if req["is_complete"] or sig["status_code"] == "signed":
                raise SignError(409, "conflict", "This request has already been signed")
            if req["is_declined"] or req["canceled"]:
                raise SignError(410, "deleted", "This resource has been deleted")
        except SignError as e:
            return e.response()
        view = secrets.token_urlsafe(24)
        expires = self.now() + 3600
        self.emu.views[view] = {"token": sig["token"], "expires": expires}
        base = str(request.base_url).rstrip("/")
        return JSONResponse(
            {
                "embedded": {
                    "sign_url": f"{base}/editor/embeddedSign?signature_id={signature_id}&token={view}",
                    "expires_at": expires,
                }
            }
        )

    # --- signing pages --------------------------------------------------------------------------------
    def signature(self, *, token: str = "", signature_id: str = "") -> tuple[dict[str, Any], dict[str, Any]] | None:
        for req in self.emu.signature_requests.values():
            for sig in req["signatures"]:
                if (token and secrets.compare_digest(sig["token"], token)) or (
                    signature_id and sig["signature_id"] == signature_id
                ):
                    return req, sig
        return None

    async def embedded(self, request: Request) -> Response:
        entry = self.emu.views.pop(request.query_params.get("token", ""), None)
        if entry is None or entry["expires"] < self.now():
            return _page("This link has expired", "<p>Ask for a new signing link.</p>", status=410)
        self.emu.sessions.add(entry["token"])
        return RedirectResponse(f"{str(request.base_url).rstrip('/')}/sign/{entry['token']}", status_code=302)

    async def page(self, request: Request, token: str) -> Response:
        found = self.signature(token=token)
        if found is None or (found[0]["embedded"] and token not in self.emu.sessions):
            return _page("This link is not valid", "<p>Check the link in your email.</p>", status=404)
        req, sig = found
        if req["canceled"]:
            return _page("This request was canceled", "<p>The sender canceled it.</p>", status=410)
        if sig["status_code"] != "awaiting_signature" or req["is_declined"]:
            return _page("Nothing to sign", "<p>This document no longer needs your signature.</p>")
        if sig["last_viewed_at"] is None:
            sig["last_viewed_at"] = self.now()
            self.event(req, "signature_request_viewed", sig)
        base = html.escape(str(request.base_url).rstrip("/"))
        t = html.escape(token)
        blurb = f"<p class=blurb>{html.escape(req['message'])}</p>" if req["message"] else ""
        body = f"""<p class=lead>{html.escape(req["requester"])} requests your signature.</p>
<p><strong>{html.escape(req["title"])}</strong></p>{blurb}
<form method=post action="{base}/sign/{t}/sign" class=box>
<label for=signature>Type your full name to sign</label>
<input id=signature name=signature value="{html.escape(sig["name"])}" required autocomplete=name>
<p class=fine>I agree to be legally bound by this document and the Dropbox Sign Terms of Service.</p>
<button type=submit class=primary>Sign</button></form>
<form method=post action="{base}/sign/{t}/decline" class=box>
<label for=reason>Decline to sign: tell the sender why</label>
<textarea id=reason name=reason rows=2 required></textarea>
<button type=submit class=danger>Decline</button></form>"""
        return _page("Review and sign", body)

    async def _form(self, request: Request, token: str) -> Any:
        found = self.signature(token=token)
        form = {k: str(v) for k, v in (await request.form()).items()}
        if (
            found is None
            or found[0]["canceled"]
            or found[0]["is_declined"]
            or found[1]["status_code"] != "awaiting_signature"
        ):
            return _page("Nothing to sign", "<p>This document can no longer be signed.</p>", status=409)
        return found[0], found[1], form

    def _after(self, req: dict[str, Any], sig: dict[str, Any], event: str, title: str, text: str) -> Response:
        if req["embedded"] and req["signing_redirect_url"] and sig["token"] in self.emu.sessions:
            self.emu.sessions.discard(sig["token"])
            back = req["signing_redirect_url"]
            return RedirectResponse(
                f"{back}{'&' if '?' in back else '?'}{urlencode({'event': event})}", status_code=302
            )
        return _page(title, f"<p>{text}</p>")

    async def sign(self, request: Request, token: str) -> Response:
        got = await self._form(request, token)
        if isinstance(got, Response):
            return got
        req, sig, form = got
        name = " ".join(form.get("signature", "").split())[:100]
        if not name:
            return _page("Type your name to sign", "<p>Go back and type your full name.</p>", status=400)
        sig.update(status_code="signed", signed_at=self.now(), signed_name=name)
        req["signed"] = self._stamped(req, sig, name)
        self.event(req, "signature_request_signed", sig)
        if all(s["status_code"] == "signed" for s in req["signatures"]):
            req["is_complete"] = True
            self.event(req, "signature_request_all_signed")
            self.event(req, "signature_request_downloadable")
        return self._after(req, sig, "signature_request_signed", "You've signed", "The sender has been told.")

    def _stamped(self, req: dict[str, Any], sig: dict[str, Any], name: str) -> list[bytes]:
        """The documents with this signer's fields filled: its name on its signature fields, the day on its date
        fields (x, y from the page's top-left in points, as form_fields_per_document gives them)."""
        signer = req["signatures"].index(sig)
        day = datetime.fromtimestamp(self.now(), UTC).strftime("%m/%d/%Y")
        header = f"Dropbox Sign Document ID: {req['signature_request_id']}"
        out = []
        for index, pdf in enumerate(req["signed"] or req["files"]):
            marks = []
            for field in req["fields"] + req["date_fields"]:
                if int(field.get("document_index") or 0) != index or int(field.get("signer") or 0) != signer:
                    continue
                page = int(field.get("page") or 1) - 1
                height = pdfstamp.page_height(pdf, page)
                text, size = (name, 16.0) if field.get("type") == "signature" else (day, 10.0)
                y = height - float(field.get("y") or 0) - float(field.get("height") or 20) * 0.75
                marks.append((page, float(field.get("x") or 0), y, text, size))
            out.append(pdfstamp.stamp_at(pdf, marks, header=header))
        return out

    async def decline(self, request: Request, token: str) -> Response:
        got = await self._form(request, token)
        if isinstance(got, Response):
            return got
        req, sig, form = got
        reason = form.get("reason", "").strip()[:2000]
        if not reason:
            return _page("Tell the sender why", "<p>Go back and give a reason to decline.</p>", status=400)
        sig.update(status_code="declined", decline_reason=reason)
        req["is_declined"] = True
        self.event(req, "signature_request_declined", sig)
        return self._after(req, sig, "signature_request_declined", "You declined to sign", "The sender has been told.")

    # --- time ---------------------------------------------------------------------------------------------
    def run_due(self) -> int:
        ran = 0
        for req in self.emu.signature_requests.values():
            finished = req["is_complete"] or req["is_declined"] or req["canceled"] or req.get("expired")
            if req["expires_at"] and not finished and self.now() >= req["expires_at"]:
                req["expired"] = True
                for sig in req["signatures"]:
                    if sig["status_code"] == "awaiting_signature":
                        sig["status_code"] = "expired"
                self.event(req, "signature_request_expired")
                ran += 1
        return ran

    # --- callbacks ------------------------------------------------------------------------------------
    def event(self, req: dict[str, Any], kind: str, sig: dict[str, Any] | None = None) -> None:
        stamp = str(self.now())
        key = self.emu.event_key()
        digest = hmac.new(key.encode(), (stamp + kind).encode(), hashlib.sha256).hexdigest()
        payload = {
            "event": {
                "event_time": stamp,
                "event_type": kind,
                "event_hash": digest,
                "event_metadata": {
                    "related_signature_id": sig["signature_id"] if sig else None,
                    "reported_for_account_id": req["account"],
                    "reported_for_app_id": self.emu.config.client_id,
                    "event_message": None,
                },
            },
            "signature_request": self.view(req),
        }
        boundary = "----DropboxSignCallback" + secrets.token_hex(8)
        part = f'--{boundary}\r\nContent-Disposition: form-data; name="json"\r\n\r\n'
        body = (part + json.dumps(payload) + f"\r\n--{boundary}--\r\n").encode()
        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}", "User-Agent": "HelloSign API"}
        url = self.emu.config.hub_url.rstrip("/") + "/webhooks/dropbox_sign"
        self.emu.callbacks.enqueue(Outgoing(url, body, headers, kind=kind))

    def install(self) -> None:
        app = self.emu.app
        app.add_api_route("/v3/signature_request/send", self.send, methods=["POST"])
        app.add_api_route("/v3/signature_request/create_embedded", self.create_embedded, methods=["POST"])
        app.add_api_route("/v3/signature_request/list", self.list_requests, methods=["GET"])
        app.add_api_route("/v3/signature_request/cancel/{signature_request_id}", self.cancel, methods=["POST"])
        app.add_api_route("/v3/signature_request/remind/{signature_request_id}", self.remind, methods=["POST"])
        app.add_api_route("/v3/signature_request/files/{signature_request_id}", self.files, methods=["GET"])
        app.add_api_route("/v3/signature_request/{signature_request_id}", self.get, methods=["GET"])
        app.add_api_route("/v3/embedded/sign_url/{signature_id}", self.sign_url, methods=["GET"])
        app.add_api_route("/editor/embeddedSign", self.embedded, methods=["GET"])
        app.add_api_route("/sign/{token}", self.page, methods=["GET"])
        app.add_api_route("/sign/{token}/sign", self.sign, methods=["POST"])
        app.add_api_route("/sign/{token}/decline", self.decline, methods=["POST"])

        async def inbox(to: str = "") -> list[dict[str, Any]]:
            return [m for m in self.emu.inbox if not to or m["to"].lower() == to.lower()]

        async def tick() -> dict[str, Any]:
            ran = self.run_due()
            await self.emu.callbacks.flush()
            return {"ran": ran, "now": self.now()}

        app.add_api_route(f"{CONTROL_PREFIX}/inbox", inbox, methods=["GET"])
        app.add_api_route(f"{CONTROL_PREFIX}/tick", tick, methods=["POST"])


STYLE = """body{font-family:system-ui,sans-serif;margin:0;background:#f7f8fa;color:#1e1e1e}
header{background:#0061fe;color:#fff;padding:.8rem 1.2rem;font-weight:700}
main{max-width:640px;margin:1.5rem auto;background:#fff;padding:1.2rem 1.4rem;border-radius:8px;box-sizing:border-box}
@media(max-width:680px){main{margin:0;border-radius:0}}
h1{font-size:1.3rem}.lead{color:#444}.box{border-top:1px solid #ddd;padding-top:1rem;margin-top:1rem}
label{display:block;font-weight:600;margin-bottom:.4rem}input,textarea{width:100%;box-sizing:border-box;font:inherit;
padding:.55rem;border:1px solid #999;border-radius:4px}#signature{font-family:cursive,serif;font-size:1.4rem}
button{margin-top:.7rem;font:inherit;padding:.55rem 1.4rem;border-radius:4px;border:0;cursor:pointer}
.primary{background:#0061fe;color:#fff;font-weight:700}.danger{background:#fff;border:1px solid #b00;color:#b00}
.fine{font-size:.8rem;color:#666}"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    page = f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1"><title>{html.escape(title)} | Dropbox Sign</title>
<style>{STYLE}</style></head><body><header>Dropbox Sign</header><main><h1>{html.escape(title)}</h1>{body}</main>
</body></html>"""
    return HTMLResponse(page, status_code=status)
