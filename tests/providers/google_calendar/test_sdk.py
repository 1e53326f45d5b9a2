"""Google's official google-auth library against the Google Calendar emulator, unmodified but for the host.

The emulator is served by uvicorn on a real 127.0.0.1 port; a requests adapter sends what is addressed to
Google's hosts there, path and all else untouched. The app's code exchange is a plain form POST (what
google-auth-oauthlib sends); from there google-auth's `Credentials` refresh at Google's token URI and its
`AuthorizedSession` calls userinfo and the calendar list, and reads Google's error body on a bad call.
"""

from __future__ import annotations

import base64
import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests
import uvicorn
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import AuthorizedSession, Request
from google.oauth2.credentials import Credentials
from requests.adapters import HTTPAdapter

from fieldhub.hub.emulator import EmulatorConfig
from fieldhub.providers.google_calendar.emulator import GoogleCalendarEmulator, create_emulator

CONFIG = EmulatorConfig(hub_url="http://app.test", client_id="gcal-client.apps.googleusercontent.com")
GOOGLE_HOSTS = {"accounts.google.com", "oauth2.googleapis.com", "openidconnect.googleapis.com", "www.googleapis.com"}
TOKEN_URI = "https://oauth2.googleapis.com/token"
SCOPES = ["openid", "email", "https://www.googleapis.com/auth/calendar"]


class ToEmulator(HTTPAdapter):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.port = port

    def send(self, request, **kwargs):  # noqa: ANN001, ANN201 - requests' adapter signature
        parts = urlsplit(request.url)
        if parts.hostname in GOOGLE_HOSTS:
            request.url = urlunsplit(("http", f"127.0.0.1:{self.port}", parts.path, parts.query, parts.fragment))
        return super().send(request, **kwargs)


@pytest.fixture
def served() -> Iterator[tuple[GoogleCalendarEmulator, int]]:
    emulator = create_emulator(CONFIG)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(emulator, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 10
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    assert server.started
    yield emulator, port
    server.should_exit = True
    thread.join(timeout=10)


def _session(port: int) -> requests.Session:
    session = requests.Session()
    session.mount("https://", ToEmulator(port))
    return session


def _consent(port: int, account: str) -> dict:
    """The user approves on Google's page; the app exchanges the code (PKCE) at Google's token URI."""
    verifier = "g" * 64
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "client_id": CONFIG.client_id,
        "redirect_uri": CONFIG.redirect_uri,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "access_type": "offline",
        "prompt": "consent",
        "state": "st",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    browser = _session(port)
    url = "https://accounts.google.com/o/oauth2/v2/auth?" + urlencode(params)
    assert browser.get(url).status_code == 200
    answer = browser.post(
        url.split("?")[0], data={**params, "decision": "approve", "account": account}, allow_redirects=False
    )
    code = parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CONFIG.redirect_uri,
        "client_id": CONFIG.client_id,
        "client_secret": CONFIG.client_secret,
        "code_verifier": verifier,
    }
    reply = browser.post(TOKEN_URI, data=form)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_issue15_item12_google_auth_refreshes_and_calls_userinfo_and_calendar_list(served) -> None:  # noqa: ANN001
    emulator, port = served
    tokens = _consent(port, emulator.users[0].id)
    creds = Credentials(
        token=None,
        refresh_token=tokens["refresh_token"],
        token_uri=TOKEN_URI,
        client_id=CONFIG.client_id,
        client_secret=CONFIG.client_secret,
        scopes=SCOPES,
    )
    creds.refresh(Request(_session(port)))
    assert creds.valid and creds.token and creds.token != tokens["access_token"]
    assert creds.refresh_token == tokens["refresh_token"]  # Google does not rotate refresh tokens

    api = AuthorizedSession(creds)
    api.mount("https://", ToEmulator(port))
    me = api.get("https://openidconnect.googleapis.com/v1/userinfo")
    assert me.status_code == 200 and me.json()["email"] == emulator.users[0].email
    calendars = api.get("https://www.googleapis.com/calendar/v3/users/me/calendarList")
    assert calendars.json()["items"][0]["primary"] is True

    # Google's error body on what the API does not have, as the client library would read it.
    missing = api.get("https://www.googleapis.com/calendar/v3/users/me/calendarList/nope/extra")
    assert missing.status_code == 404
    error = missing.json()["error"]
    assert error["status"] == "NOT_FOUND" and error["errors"][0]["reason"] == "notFound"

    # A revoked grant: google-auth raises RefreshError with Google's invalid_grant.
    revoke = _session(port).post("https://oauth2.googleapis.com/revoke", data={"token": tokens["refresh_token"]})
    assert revoke.status_code == 200
    with pytest.raises(RefreshError, match="invalid_grant"):
        creds.refresh(Request(_session(port)))
