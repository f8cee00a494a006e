"""A real SMTP server on loopback for cierre's tests (aiosmtpd).

Usage: smtp_server.py --port N --out DIR [--starttls CERT KEY] [--implicit CERT KEY]
                      [--auth USER:PASSWORD] [--reject-rcpt ADDRESS] [--delay-ms MS]
Every message received is written to DIR as <n>.eml (the bytes as received) with the
envelope recipients in <n>.rcpt. With --delay-ms, the server waits that long after the
message data arrives (leaving <n>.receiving meanwhile) before it stores and accepts it.
Prints "ready" once it accepts connections.
"""
import argparse
import asyncio
import os
import signal
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Saver:
    def __init__(self, out, reject, delay):
        self.out = out
        self.reject = reject
        self.delay = delay
        self.n = 0

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.reject:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        base = os.path.join(self.out, f"{os.getpid()}-{self.n:06d}")
        if self.delay:
            open(base + ".receiving", "w").close()
            await asyncio.sleep(self.delay / 1000)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content or envelope.content)
        os.rename(base + ".tmp", base + ".eml")
        with open(base + ".rcpt", "w") as f:
            f.write("\n".join(envelope.rcpt_tos))
        return "250 Message accepted"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--starttls", nargs=2)
    p.add_argument("--implicit", nargs=2)
    p.add_argument("--auth")
    p.add_argument("--reject-rcpt")
    p.add_argument("--delay-ms", type=int, default=0)
    a = p.parse_args()
    kwargs = {}
    if a.starttls:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*a.starttls)
        kwargs.update(tls_context=ctx, require_starttls=True)
    if a.implicit:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*a.implicit)
        kwargs.update(ssl_context=ctx)
    if a.auth:
        user, password = a.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok)

        kwargs.update(authenticator=authenticator, auth_required=True,
                      auth_require_tls=bool(a.starttls or a.implicit))
    controller = Controller(Saver(a.out, a.reject_rcpt, a.delay_ms), hostname="127.0.0.1", port=a.port,
                            server_hostname="localhost", ready_timeout=10, **kwargs)
    controller.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    loop = asyncio.new_event_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    loop.run_until_complete(stop.wait())
    controller.stop()


if __name__ == "__main__":
    sys.exit(main())
