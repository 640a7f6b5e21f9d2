"""The Slack side of `smsbot doctor`: `auth.test` with the bot token, and the scopes Slack
says the token has (the X-OAuth-Scopes header every Web API answer carries)."""

from __future__ import annotations

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError


class WebClientProbe:
    """doctor.SlackProbe over a WebClient."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def auth_test(self) -> tuple[bool, list[str] | str]:
        try:
            response = self.client.auth_test()
        except SlackApiError as exc:
            return False, str(exc.response.get("error") or "an error")
        headers = {str(k).lower(): v for k, v in (response.headers or {}).items()}
        raw = headers.get("x-oauth-scopes", "")
        if isinstance(raw, list):  # slack_sdk keeps repeated headers as lists
            raw = ",".join(str(v) for v in raw)
        return True, [s.strip() for s in str(raw).split(",") if s.strip()]
