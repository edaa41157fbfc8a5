"""Starts moto's S3 server serving one request at a time.

moto checks a write's precondition and then writes without a lock, so with its default
threaded server two racing conditional writes can both win. Served serially, exactly one
wins, which is what the storage probe and the lease tests need to observe.

Usage: python moto_serial.py HOST PORT
"""

import sys

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.server import MotoRequestHandler
from werkzeug.serving import run_simple


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, use_reloader=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
