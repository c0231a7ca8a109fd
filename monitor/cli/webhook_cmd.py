"""``modelmon webhook test``: one signed ``model.test`` event to a model's endpoint."""

from __future__ import annotations

import argparse
import logging

from monitor.cli.common import CommandError, load_model
from monitor.redaction import redact
from monitor.settings import ConfigError


def cmd_webhook_test(args: argparse.Namespace) -> int:
    """Send one signed model.test event to the model's configured endpoint.

    Only the named model's webhook is built, so another model's webhook cannot get in the way.
    """
    import httpx

    from monitor.alerting.actions import build_endpoints
    from monitor.alerting.delivery import send_test
    from monitor.alerting.targets import display_url

    settings, model = load_model(args.config, args.model)
    if model.webhook is None:
        raise ConfigError(
            f"--model {args.model}: the model has no webhook in {args.config}; add "
            f"models[{args.model}].webhook with a url and a secret"
        )
    only = settings.model_copy(update={"models": [model]})
    # build_endpoints warns about a host that does not resolve now; send_test resolves again
    # and that failure gets its own line below, so the warning would only say it twice.
    logging.getLogger("monitor.alerting.actions").setLevel(logging.ERROR)
    endpoint = build_endpoints(only)[model.name]
    where = display_url(endpoint.url)  # never the userinfo or query, which may hold tokens
    try:
        response = send_test(endpoint)
    except ValueError as exc:  # the target policy refused the address it resolved to
        raise ConfigError(f"models[{model.name}].webhook.url: {redact(str(exc))}") from None
    except OSError as exc:
        raise CommandError(
            f"webhook test: {where}: the host does not resolve ({exc.strerror or exc}); "
            "check models[].webhook.url and this machine's DNS",
            code=1,
        ) from None
    except httpx.HTTPError as exc:
        raise CommandError(
            f"webhook test: {where}: no answer ({redact(str(exc))}); check that the receiver "
            "is up and reachable from here",
            code=1,
        ) from None
    ok = 200 <= response.status_code < 300
    print(f"{where}: HTTP {response.status_code} ({'delivered' if ok else 'refused'})")
    return 0 if ok else 1
