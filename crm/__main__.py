"""Command line: ``python -m crm {demo,embedded,serve,migrate,token,import,docs-events}``."""
import warnings

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # nameko 2 runs on eventlet by design

import eventlet  # noqa: E402

eventlet.monkey_patch()  # noqa: E402 - must precede every other import

import argparse  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from crm_common.auth import issue_token  # noqa: E402
from crm_common.config import DEV_SECRET, SERVICES, env, insecure_settings  # noqa: E402


def _serve(args):
    from crm import runner
    problems = insecure_settings()
    if problems:
        sys.exit(f"{args.service}: refusing to start: " + "; ".join(problems))
    if env("CRM_AUTH_SECRET", DEV_SECRET) == DEV_SECRET:
        logging.getLogger("crm").warning("%s runs with the development secret (CRM_ALLOW_DEV_SECRET): "
                                         "anyone can sign tokens for it", args.service)
    if args.migrate:
        runner.migrate(args.service)
    service_runner = runner.distributed(args.service)
    service_runner.start()
    logging.getLogger("crm").info("%s started", args.service)
    service_runner.wait()


def _migrate(args):
    from crm import runner
    for name in SERVICES if args.service == "all" else [args.service]:
        runner.migrate(name)
        print(f"{name}: schema at head")


def _embedded(args):
    from crm import runner
    service_runner = runner.embedded(args.data_dir, args.port)
    service_runner.start()
    print(f"CRM running embedded on http://127.0.0.1:{args.port} (data in {args.data_dir}); Ctrl-C stops it")
    service_runner.wait()


def _demo(args):
    from crm import demo_show
    demo_show.run(args)


def _admin(args):
    from crm import runner
    password = _read_password(args.user) if args.password_stdin else None
    created = runner.bootstrap_admin(args.user, password=password)
    print(f"{args.user}: {'registered as admin' if created else 'an active admin, announced again'}"
          f"{'; password set' if password else ''}; sign in at POST /v1/auth/login"
          f"{'' if password else ' once a password is set (--password-stdin)'}, "
          f"or a token: python -m crm token --user {args.user} --role admin")


def _read_password(user_id: str) -> str:
    """The password on stdin (its first line), checked against the same rules as the API's."""
    from crm_common.errors import CrmError
    from services.customers.domain.signin import check_new_password
    password = sys.stdin.readline().rstrip("\r\n")
    try:
        check_new_password(password, user_id)
    except CrmError as exc:
        sys.exit(f"password refused: {exc.message}")
    return password


def _token(args):
    print(issue_token(env("CRM_AUTH_SECRET", DEV_SECRET), args.user, args.role, args.team, int(args.ttl_days * 86400),
                      issuer=env("CRM_TOKEN_ISSUER", "crm")))


def _docs_events(args):
    from crm import event_docs
    if args.check:
        stale = event_docs.out_of_date(args.docs_dir)
        if stale:
            sys.exit(f"out of date in {args.docs_dir}: {', '.join(stale)}; run python -m crm docs-events")
        return
    changed = [os.path.join(args.docs_dir, path) for path in event_docs.write(args.docs_dir)]
    print("\n".join(f"{'wrote' if os.path.exists(path) else 'removed'} {path}" for path in changed) or "up to date")


def main(argv=None):
    logging.basicConfig(level=env("CRM_LOG_LEVEL", "WARNING"), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if not env("CRM_LOG_LEVEL"):
        logging.getLogger("nameko.containers").setLevel(logging.ERROR)  # refused requests are not news
        logging.getLogger("kombu.connection").setLevel(logging.ERROR)  # memory:// has no hostname, by design
    parser = argparse.ArgumentParser(prog="python -m crm")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run one service (distributed mode: RabbitMQ + PostgreSQL)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--migrate", action="store_true", help="upgrade the schema first")
    serve.set_defaults(func=_serve)

    migrate = commands.add_parser("migrate", help="upgrade a service's database schema to head")
    migrate.add_argument("service", choices=SERVICES + ("all",))
    migrate.set_defaults(func=_migrate)

    embedded = commands.add_parser("embedded", help="all services in one process, in-memory bus, SQLite")
    embedded.add_argument("--port", type=int, default=int(env("CRM_PORT", "8000")))
    embedded.add_argument("--data-dir", default=env("CRM_DATA_DIR", "data"))
    embedded.set_defaults(func=_embedded)

    demo = commands.add_parser("demo", help="embedded mode with fresh realistic demo data, then a tour")
    demo.add_argument("--port", type=int, default=int(env("CRM_PORT", "8000")))
    demo.add_argument("--data-dir", default="data/demo")
    demo.add_argument("--customers", type=int, default=2000)
    demo.add_argument("--no-serve", action="store_true", help="stop after the tour instead of serving")
    demo.set_defaults(func=_demo)

    admin = commands.add_parser("admin", help="register the first admin in the customers database "
                                                "(CUSTOMERS_DATABASE_URL); the other services learn of them by event")
    admin.add_argument("--user", required=True)
    admin.add_argument("--password-stdin", action="store_true",
                       help="also set their sign-in password, read from the first line of stdin")
    admin.set_defaults(func=_admin)

    token = commands.add_parser("token", help="issue an API token for a script or service account (a JWT signed "
                                              "with CRM_AUTH_SECRET; the user must be registered in the directory)")
    token.add_argument("--user", required=True)
    token.add_argument("--role", required=True, choices=("rep", "manager", "admin"),
                       help="informative: the directory's role applies")
    token.add_argument("--team")
    token.add_argument("--ttl-days", type=float, default=1.0, help="lifetime in days (default 1)")
    token.set_defaults(func=_token)

    from crm import importer
    importer.add_parser(commands)

    docs = commands.add_parser("docs-events", help="write docs/events.md, docs/asyncapi.yaml and docs/schemas/ "
                                                    "from the registered contracts")
    docs.add_argument("--docs-dir", default="docs")
    docs.add_argument("--check", action="store_true", help="fail if a file is out of date")
    docs.set_defaults(func=_docs_events)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
