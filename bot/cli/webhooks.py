"""`smsbot webhooks register`: subscribe the app's delivery webhooks with the providers.

Webhook registration, per provider:
- Sociocs: POST /webhook-subscriptions once per configured channel (twlo, twlowa, gswa),
  events ["messages", "status_updates"], subscriber_reference_id `smsbot-<code>`. Sociocs updates the
  subscription with the same reference id, so running this again (or with a new URL) is safe.
- Bird (sms.outbound for delivery reports, sms.inbound for customers' messages): GET /workspaces/{ws}/webhook-subscriptions first (Bird's list endpoint, 100 a page)
  and only POST when no subscription for this URL, event and channel exists. Bird does not
  show the signing key of an existing subscription: after changing BIRD_WEBHOOK_SIGNING_KEY,
  delete the old subscription in Bird and run this again.
- TextUs: no subscription API; the webhook is set up by hand (printed).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click
import httpx

from bot.cli.main import command_group, configured
from bot.core.config import Settings
from providers.base import redact, short_body

if TYPE_CHECKING:
    from providers.sociocs import SociocsCode

SOCIOCS_CODES: tuple[SociocsCode, ...] = ("twlo", "twlowa", "gswa")


def _secret(value: Any) -> str | None:
    raw = value.get_secret_value() if value is not None else ""
    return raw or None


def _send(client: httpx.Client, prepared: Any) -> httpx.Response:
    body = json.dumps(prepared.json_body).encode() if prepared.json_body is not None else None
    return client.request(prepared.method, prepared.url, headers=prepared.headers, content=body,
                          params=prepared.params)


def register_sociocs(settings: Settings, base: str, client: httpx.Client, secrets: list[str]) -> list[str]:
    from providers.sociocs import SociocsProvider

    api_key, secret = _secret(settings.sociocs_api_key), _secret(settings.sociocs_webhook_secret)
    codes = [c for c in SOCIOCS_CODES if _secret(getattr(settings, f"sociocs_channel_key_{c}"))]
    if not api_key or not codes:
        return []
    if not secret:
        return ["Sociocs: skipped; set SOCIOCS_WEBHOOK_SECRET first (it signs the events)."]
    lines = []
    for code in codes:
        provider = SociocsProvider(code, api_key, str(_secret(getattr(settings, f"sociocs_channel_key_{code}"))),
                                   base_url=settings.sociocs_api_url, client=client)
        prepared = provider.build_webhook_subscription(f"{base}/webhooks/sociocs", secret, f"smsbot-{code}",
                                                       events=["messages", "status_updates"])
        try:
            resp = _send(client, prepared)
        except httpx.HTTPError as exc:
            lines.append(f"Sociocs {code}: could not reach Sociocs ({type(exc).__name__}).")
            continue
        payload = _json(resp)
        if resp.status_code == 200 and payload.get("status") == "success":
            lines.append(f"Sociocs {code}: subscribed {base}/webhooks/sociocs to messages and status_updates "
                         f"(reference smsbot-{code}).")
        elif resp.status_code in (401, 403):
            lines.append(f"Sociocs {code}: Sociocs rejects the API key: check SOCIOCS_API_KEY.")
        else:
            lines.append(f"Sociocs {code}: failed ({resp.status_code}): {redact(_words(payload, resp), secrets)}")
    return lines


BIRD_EVENTS = ("sms.outbound", "sms.inbound")


def register_bird(settings: Settings, base: str, client: httpx.Client, secrets: list[str]) -> list[str]:
    from providers.bird import BirdProvider

    api_key, key = _secret(settings.bird_api_key), _secret(settings.bird_webhook_signing_key)
    if not api_key or not settings.bird_workspace_id or not settings.bird_channel_id:
        return []
    if not key:
        return ["Bird: skipped; set BIRD_WEBHOOK_SIGNING_KEY first (it signs the events)."]
    provider = BirdProvider(api_key, settings.bird_workspace_id, settings.bird_channel_id,
                            base_url=settings.bird_api_url, client=client)
    lines: list[str] = []
    for event in BIRD_EVENTS:  # delivery reports, then customers' messages (issue 13)
        lines.append(_bird_subscribe(provider, settings, f"{base}/webhooks/bird", key, event, client, secrets))
        if "rejects the access key" in lines[-1] or "could not reach" in lines[-1]:
            break
    return lines


def _bird_subscribe(provider: Any, settings: Settings, url: str, key: str, event: str, client: httpx.Client,
                    secrets: list[str]) -> str:
    prepared = provider.build_webhook_subscription(url, key, event=event)
    wanted = prepared.json_body or {}
    try:
        existing = _bird_existing(client, prepared.url, prepared.headers)
        if any(_same_bird_subscription(s, wanted) for s in existing):
            return f"Bird: already subscribed {url} to {event}; nothing changed."
        resp = _send(client, prepared)
    except httpx.HTTPError as exc:
        return f"Bird: could not reach Bird ({type(exc).__name__})."
    except PermissionError:
        return "Bird: Bird rejects the access key: check BIRD_API_KEY."
    if 200 <= resp.status_code < 300:
        return f"Bird: subscribed {url} to {event} for channel {settings.bird_channel_id}."
    if resp.status_code in (401, 403):
        return "Bird: Bird rejects the access key: check BIRD_API_KEY."
    return f"Bird: failed ({resp.status_code}) for {event}: {redact(_words(_json(resp), resp), secrets)}"


def _bird_existing(client: httpx.Client, url: str, headers: dict[str, str]) -> list[dict[str, Any]]:
    """Every subscription of the workspace (Bird pages with limit + pageToken)."""
    found: list[dict[str, Any]] = []
    token: str | None = None
    get_headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
    for _ in range(50):
        params: dict[str, Any] = {"limit": 100}
        if token:
            params["pageToken"] = token
        resp = client.get(url, headers=get_headers, params=params)
        if resp.status_code in (401, 403):
            raise PermissionError
        if resp.status_code != 200:
            return found  # no list: fall back to creating (documented above)
        payload = _json(resp)
        results = payload.get("results")
        if isinstance(results, list):
            found += [r for r in results if isinstance(r, dict)]
        token = payload.get("nextPageToken") or None
        if not token:
            break
    return found


def _same_bird_subscription(existing: dict[str, Any], wanted: dict[str, Any]) -> bool:
    filters = {(f.get("key"), f.get("value")) for f in existing.get("eventFilters") or [] if isinstance(f, dict)}
    return (existing.get("url") == wanted["url"] and existing.get("event") == wanted["event"]
            and existing.get("service") == wanted["service"]
            and all((f["key"], f["value"]) in filters for f in wanted["eventFilters"])
            and existing.get("status", "active") != "deleted")


def textus_instructions(settings: Settings, base: str) -> list[str]:
    if not _secret(settings.textus_api_token):
        return []
    secret_note = ("use the value of TEXTUS_WEBHOOK_SECRET as its secret" if _secret(settings.textus_webhook_secret)
                   else "set TEXTUS_WEBHOOK_SECRET to the secret TextUs shows")
    return [f"TextUs: set this up by hand in TextUs (Settings -> Integrations -> Webhooks): URL {base}/webhooks/textus, "
            f"events message.delivered, message.failed, message.unknown, message.received, and contact.opted_out, "
            f"contact.opted_in (off by default in TextUs: consent needs them); {secret_note}."]


def _json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _words(payload: dict[str, Any], resp: httpx.Response) -> str:
    errors = payload.get("errors")
    if isinstance(errors, list):
        msgs = [str(e.get("msg")) for e in errors if isinstance(e, dict) and e.get("msg")]
        if msgs:
            return "; ".join(msgs)
    for key in ("message", "description"):
        if payload.get(key):
            return str(payload[key])
    return short_body(resp)


webhooks = command_group("webhooks", "set up provider delivery reports")


@webhooks.command("register", short_help="subscribe /webhooks/<provider> with Sociocs and Bird",
                  help="Subscribe /webhooks/<provider> with Sociocs and Bird; print the TextUs steps.")
@click.option("--public-url", required=True, help="the app's public base URL, e.g. https://sms.example.com")
def register_command(public_url: str) -> int:
    return run_webhooks(public_url, configured())


def run_webhooks(public_url: str, settings: Settings, client: httpx.Client | None = None) -> int:
    base = public_url.rstrip("/")
    if not base.startswith("https://") and not base.startswith("http://"):
        print("error: --public-url needs to be an http(s) URL, e.g. https://sms.example.com", file=sys.stderr)
        return 2
    if not base.startswith("https://"):
        print("warning: providers expect an https URL for webhooks.", file=sys.stderr)
    secrets = settings.secret_values()
    own = client is None
    client = client or httpx.Client(timeout=15)
    try:
        lines = register_sociocs(settings, base, client, secrets) + register_bird(settings, base, client, secrets)
    finally:
        if own:
            client.close()
    lines += textus_instructions(settings, base)
    if not lines:
        lines = ["No provider with webhooks is configured (Sociocs, Bird or TextUs credentials)."]
    for line in lines:
        print(redact(line, secrets))
    return 1 if any(": failed" in ln or "rejects" in ln or "could not reach" in ln for ln in lines) else 0
