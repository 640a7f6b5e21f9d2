"""The Bolt app: built from an AppContext, every feature registers its listeners here."""

from __future__ import annotations

from slack_bolt import App

from bot.context import AppContext


def build_app(ctx: AppContext) -> App:
    settings = ctx.settings
    app = App(
        client=ctx.client,
        signing_secret=settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else "",
        # The ack is our listener's return: it only validates and writes a row (a few ms),
        # so answer after it instead of polling for ack() every 10 ms.
        process_before_response=True,
        token_verification_enabled=False,
        request_verification_enabled=bool(settings.slack_signing_secret),
    )
    from bot.listeners import command, send

    command.register(app, ctx)
    send.register(app, ctx)
    for register in ctx.extras.get("registrars", []):
        register(app, ctx)
    return app
