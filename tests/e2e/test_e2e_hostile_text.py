"""Hostile text through every Slack surface, end to end: nothing typed or answered by a provider
may reach Slack as a mention (`<!channel>`, `<!here>`, `<@U999>`) or a disguised link."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.conftest import BIRD_CH, BIRD_WS, E2E
from tests.e2e.test_e2e_bulk import confirm, form_values, open_form, submit_form
from tests.fakes.providers import Fault
from tests.fakes.slack_requests import app_home_opened_event, block_actions_body, option, view_submission_body

HOSTILE = "<!channel> <!here> <@U999> <https://evil.example|bank.com> & co"
SHOWN = "&lt;!channel&gt;"  # how the hostile text must look once escaped
FORBIDDEN = ("<!channel", "<!here", "<@U999", "<https://evil")
CATALOG = """\
templates:
  - name: welcome
    sender: bird
    project_id: ce6a2fd6-b2fa-4f5a-a2cd-f3bd15883318
    locale: en
    body: Welcome {{name}}!
    variables:
      - {key: name, label: First name}
"""


def typed(text: str) -> str:
    """What Slack sends for text typed literally into a slash command."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_texts(node: Any) -> Iterator[str]:
    """Every text Slack renders as mrkdwn: top-level message texts and mrkdwn text objects."""
    if isinstance(node, list):
        for item in node:
            yield from mrkdwn_texts(item)
    elif isinstance(node, dict):
        if node.get("type") == "mrkdwn" and isinstance(node.get("text"), str):
            yield node["text"]
        for key, value in node.items():
            if key in ("text", "initial_comment") and isinstance(value, str):
                yield value
            elif key in ("blocks", "view", "elements", "fields", "text", "accessory"):
                yield from mrkdwn_texts(json.loads(value) if key == "blocks" and isinstance(value, str) else value)


def test_hostile_text_never_reaches_slack_unescaped(e2e_factory: Callable[..., E2E], tmp_path: Path) -> None:
    catalog = tmp_path / "templates.yml"
    catalog.write_text(CATALOG, encoding="utf-8")
    e2e = e2e_factory(sms_templates_file=str(catalog))
    assert e2e.providers is not None
    e2e.rt.ctx.bulk.tracker.interval = 0.2
    acks: list[dict[str, Any]] = []

    def command(text: str) -> None:
        resp = e2e.command(text, user_id="U1", channel_id="C1")
        assert resp.status_code == 200
        if resp.content.strip():
            acks.append(resp.json())

    # A send the provider refuses with hostile error text: the announcement and the thread notice.
    e2e.providers.script("/message", [Fault(status=400, body={"status": "error", "errors": [{"msg": HOSTILE}]})])
    command(f'send --name "{typed(HOSTILE)}" +16175551212 {typed(HOSTILE)}')
    e2e.wait(lambda: e2e.rt.store.counts_by_status().get("failed") == 1, 5, "the refused send")
    e2e.wait(lambda: any("Not sent" in c.params.get("text", "") for c in e2e.thread_replies()), 5, "the notice")
    # A schedule, then `/sms list`, `/sms status` (by id and by number) and the App Home.
    command(f'send --at "tomorrow 9am" --name "{typed(HOSTILE)}" +16175551213 {typed(HOSTILE)}')
    command("list")
    command("status 1")
    command("status +16175551212")
    command(f"status {typed(HOSTILE)}")
    command(f"{typed(HOSTILE)}")  # an unknown subcommand is echoed back
    assert e2e.sender.event(app_home_opened_event("U1")).status_code == 200
    e2e.slack.wait_for("views.publish")

    # Bulk: the confirmation (preview, invalid lines), progress and summary, one provider refusal.
    bird = f"/workspaces/{BIRD_WS}/channels/{BIRD_CH}/messages"
    e2e.providers.script(bird, [Fault(status=422, body={"code": "InvalidPayload", "message": HOSTILE})])
    form = open_form(e2e)
    pasted = f"+16175551214, {HOSTILE}\n+16175551215, Ann\n{HOSTILE}"
    answer = submit_form(e2e, form, form_values(text=f"Hi {{name}} {HOSTILE}", pasted=pasted))
    assert answer.get("response_action") == "update", answer
    acks.append(answer)
    confirm(e2e, answer["view"])
    e2e.wait(lambda: any("Bulk #" in c.params.get("text", "") and "finished" in c.params.get("text", "")
                         for c in e2e.thread_replies()), 10, "the bulk summary")

    # The template form's live preview with a hostile value.
    resp = e2e.command("template welcome", user_id="U1", channel_id="C1")
    assert resp.status_code == 200
    view = e2e.slack.wait_for("views.open", lambda c: c.params["view"].get("callback_id") == "template_modal")[0]
    view = view.response["view"]
    values = {"tpl": {"tpl_choose": {"selected_option": "welcome"}}, "v|welcome|name": {"tpl_var": HOSTILE}}
    e2e.sender.post(block_actions_body("tpl_var", block_id="v|welcome|name", view=view, state_values=values,
                                       action_type="plain_text_input"))
    e2e.slack.wait_for("views.update")
    # The send modal with a hostile name and text.
    e2e.sender.post(view_submission_body("send_modal", {
        "sender": {"value": {"type": "static_select", "selected_option": option("twlo")}},
        "to": {"value": "+16175551216"}, "name": {"value": HOSTILE}, "text": {"value": HOSTILE}}))

    texts = [t for call in e2e.slack.calls for t in mrkdwn_texts(call.params)]
    texts += [t for payload in e2e.slack.responses for t in mrkdwn_texts(payload)]
    texts += [t for payload in acks for t in mrkdwn_texts(payload)]
    leaks = [t for t in texts if any(bad in t for bad in FORBIDDEN)]
    assert leaks == []
    # Each surface did show the hostile text (escaped), so the scan above is not vacuous.
    for method, what in (("chat.postMessage", "announcement and notices"), ("views.publish", "App Home"),
                         ("views.update", "bulk confirmation and template preview"),
                         ("chat.update", "bulk progress")):
        shown = [t for c in e2e.slack.calls_to(method) for t in mrkdwn_texts(c.params)]
        assert any(SHOWN in t for t in shown), f"{what}: the hostile text never showed"
    assert any(SHOWN in t for payload in acks for t in mrkdwn_texts(payload)), "list/status replies"
    notices = [c.params["text"] for c in e2e.thread_replies() if "Not sent" in c.params.get("text", "")]
    assert any(SHOWN in t for t in notices), "the provider's error text in the thread"
