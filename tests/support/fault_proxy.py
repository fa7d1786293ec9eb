"""A flaky network between fastcart and the AWS emulator, for tests.

This is a small HTTP/1.1 reverse proxy. It sits on loopback in front of the
moto server and passes requests and answers through, except that it loses a
fraction of AWS's answers on purpose. The tests point fastcart at the proxy
instead of at moto, so they can check that fastcart never creates a resource
twice ("twins") when the network is unreliable: when an answer is lost,
fastcart cannot know whether its request took effect, and it must find out
(for example by looking the resource up by its tags) before trying again.

For each request, with probability --loss, the answer is lost. A lost answer
is lost at one of two moments, with equal odds:

- before: the request never reaches moto. Nothing happened on the AWS side;
  retrying is harmless.
- after: the request is passed to moto and takes effect (the VPC is made,
  the stream is created...), then moto's answer is thrown away. The client
  sees a failure although the change was made. This is the case that makes
  twins if a client just retries a create.

And it is lost in one of two ways, again with equal odds:

- 503: the client gets "503 Service Unavailable" with an empty body (and
  "Connection: close"), like an overloaded AWS front end or load balancer.
- close: the connection is closed without any answer being written, like a
  dropped network link. The client sees the connection end (EOF) while it is
  waiting for the answer.

The decisions come from one random generator seeded by --seed and are drawn
in the order the requests arrive (once each request's body has been read), so
a run with the same requests in the same order loses the same answers.
Requests to moto's own control endpoints (paths starting with /moto-api) are
never lost.

The proxy has control endpoints of its own, which are not passed to moto:

- POST /fault-proxy/loss with a body such as "0.3" sets the loss rate
  (answers 200 "ok").
- GET /fault-proxy/stats answers JSON counts:
  {"requests": N, "lost_before": N, "lost_after": N, "forwarded": N, ...}
  where "forwarded" counts requests passed to moto whose answer was
  delivered, so requests = lost_before + lost_after + forwarded
  + upstream_errors (moto unreachable, answered 502 by the proxy). Requests
  still in flight are not counted yet.

With --log FILE, one line per lost answer is written to FILE (method, path,
the AWS operation from the X-Amz-Target header or the form's Action=, and
which loss), so a developer can see which operations were lost.

It stops by itself: with --parent-pid PID it exits once that process is gone
(checked every second), and with --max-seconds N it exits after N seconds.

Run:
  python3 fault_proxy.py --upstream http://127.0.0.1:5000 --port 0 \\
      --loss 0.2 --seed 7 [--log FILE] [--parent-pid PID] [--max-seconds N]
Its first line on stdout is "listening on 127.0.0.1:PORT".

Python 3.11 standard library only.
"""

import argparse
import http.client
import http.server
import json
import os
import random
import socket
import socketserver
import sys
import threading
import time
import urllib.parse

# Headers that describe one connection, not the message: never relayed.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        # The proxy has read the whole body already; it answered any
        # "Expect: 100-continue" itself.
        "expect",
    }
)


class State:
    """The proxy's settings, random generator and counts, shared by threads."""

    def __init__(self, upstream, loss, seed, log_path, upstream_timeout):
        parts = urllib.parse.urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise SystemExit(f"--upstream must be http://HOST:PORT, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.upstream_prefix = parts.path.rstrip("/")
        self.upstream_timeout = upstream_timeout
        self.lock = threading.Lock()
        self.rng = random.Random(seed)
        self.loss = loss
        self.seq = 0
        self.counts = {
            "requests": 0,
            "lost_before": 0,
            "lost_after": 0,
            "forwarded": 0,
            "upstream_errors": 0,
            "lost_503": 0,
            "lost_closed": 0,
        }
        self.log_lock = threading.Lock()
        self.log = open(log_path, "a", encoding="utf-8") if log_path else None

    def decide(self):
        """Draws this request's fate: (seq, None) or (seq, (when, how)).

        Three numbers are drawn for every request, lost or not, so the
        sequence of draws depends only on the order of the requests.
        """
        with self.lock:
            self.seq += 1
            lost = self.rng.random() < self.loss
            before = self.rng.random() < 0.5
            as_503 = self.rng.random() < 0.5
            seq = self.seq
        if not lost:
            return seq, None
        if self.when != "both":
            before = self.when == "before"
        return seq, ("before" if before else "after", "503" if as_503 else "close")

    def count(self, *keys):
        with self.lock:
            self.counts["requests"] += 1
            for key in keys:
                self.counts[key] += 1

    def stats(self):
        with self.lock:
            return dict(self.counts, loss=self.loss)

    def set_loss(self, loss):
        with self.lock:
            self.loss = loss

    def log_loss(self, seq, method, path, operation, when, how):
        if self.log is None:
            return
        stamp = time.strftime("%H:%M:%S")
        line = f"{stamp} #{seq} lost-{when} {how} {method} {path} {operation or '-'}\n"
        with self.log_lock:
            self.log.write(line)
            self.log.flush()


def operation_of(headers, query, body):
    """The AWS operation a request asks for, for the log, or None."""
    target = headers.get("X-Amz-Target")
    if target:
        return target
    for source in (query, body):
        try:
            text = source.decode("utf-8") if isinstance(source, bytes) else source
        except UnicodeDecodeError:
            continue
        if "Action=" not in text:
            continue
        actions = urllib.parse.parse_qs(text).get("Action")
        if actions:
            return "Action=" + actions[0]
    return None


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection is dropped after this long.
    timeout = 600
    # Headers and body are written separately; without this, Nagle's
    # algorithm and delayed ACKs can hold the body back for 40 ms.
    disable_nagle_algorithm = True
    state: State = None  # set in main()

    def log_message(self, format, *args):
        pass

    # Every method goes the same way.
    def do_GET(self):
        self.handle_any()

    do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = do_GET

    # --- reading the request ---------------------------------------------

    def read_body(self):
        """The whole request body, de-chunked, and whether it had a length
        (Content-Length or chunked) to relay."""
        encoding = self.headers.get("Transfer-Encoding", "")
        codings = [c.strip().lower() for c in encoding.split(",") if c.strip()]
        if codings and codings[-1] == "chunked":
            return self.read_chunked(), True
        length = self.headers.get("Content-Length")
        if length is None:
            return b"", False
        n = int(length)
        if n < 0:
            raise ValueError("negative Content-Length")
        return self.read_exactly(n), True

    def read_exactly(self, n):
        data = self.rfile.read(n)
        if len(data) != n:
            raise ConnectionError("request body cut short")
        return data

    def read_chunked(self):
        chunks = []
        while True:
            line = self.rfile.readline(65537)
            if not line:
                raise ConnectionError("chunked body cut short")
            size = int(line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                break
            chunks.append(self.read_exactly(size))
            if self.rfile.readline(65537) not in (b"\r\n", b"\n"):
                raise ValueError("bad chunk ending")
        # Trailer fields, if any, up to the blank line; dropped.
        while True:
            line = self.rfile.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
        return b"".join(chunks)

    # --- answering ---------------------------------------------------------

    def answer(self, code, body=b"", content_type="text/plain", close=False):
        self.send_response_only(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drop_connection(self):
        """Ends the connection without a word: the client sees EOF."""
        self.close_connection = True
        try:
            self.wfile.flush()
        except OSError:
            pass
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def lose(self, how):
        if how == "503":
            self.answer(503, close=True)
            self.close_connection = True
        else:
            self.drop_connection()

    def lost(self, seq, fate, target, path, body):
        when, how = fate
        operation = operation_of(self.headers, target.query, body)
        self.state.log_loss(seq, self.command, path, operation, when, how)
        self.state.count("lost_" + when, "lost_503" if how == "503" else "lost_closed")
        self.lose(how)

    def handle_any(self):
        state = self.state
        try:
            body, has_length = self.read_body()
        except (ValueError, ConnectionError, OSError):
            self.close_connection = True
            try:
                self.answer(400, b"bad request body\n", close=True)
            except OSError:
                pass
            return
        target = urllib.parse.urlsplit(self.path)
        path = target.path or "/"

        if path.startswith("/fault-proxy/"):
            self.control(path, body)
            return

        if path.startswith("/moto-api"):
            seq, fate = 0, None
        else:
            seq, fate = state.decide()

        if fate is not None and fate[0] == "before":
            self.lost(seq, fate, target, path, body)
            return

        try:
            status, reason, headers, answer_body = self.forward(body, has_length)
        except (OSError, http.client.HTTPException) as error:
            state.count("upstream_errors")
            self.answer(502, f"fault proxy: upstream failed: {error}\n".encode(), close=True)
            self.close_connection = True
            return

        if fate is not None:
            self.lost(seq, fate, target, path, body)
            return

        state.count("forwarded")
        self.relay(status, reason, headers, answer_body)

    def forward(self, body, has_length):
        state = self.state
        conn = http.client.HTTPConnection(
            state.upstream_host, state.upstream_port, timeout=state.upstream_timeout
        )
        try:
            conn.putrequest(
                self.command,
                state.upstream_prefix + self.path,
                skip_host=True,
                skip_accept_encoding=True,
            )
            named = {
                token.strip().lower()
                for value in self.headers.get_all("Connection", [])
                for token in value.split(",")
            }
            for name, value in self.headers.items():
                lower = name.lower()
                if lower in HOP_BY_HOP or lower in named or lower == "content-length":
                    continue
                conn.putheader(name, value)
            if has_length or body:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            response = conn.getresponse()
            answer_body = response.read()  # de-chunks if need be
            return response.status, response.reason, response.getheaders(), answer_body
        finally:
            conn.close()

    def relay(self, status, reason, headers, body):
        named = {
            token.strip().lower()
            for name, value in headers
            if name.lower() == "connection"
            for token in value.split(",")
        }
        self.send_response_only(status, reason)
        upstream_length = None
        for name, value in headers:
            lower = name.lower()
            if lower == "content-length":
                upstream_length = value
                continue
            if lower in HOP_BY_HOP or lower in named:
                continue
            self.send_header(name, value)
        if self.command == "HEAD" or status == 304:
            # No body here, but the length is the one a GET would have had.
            if upstream_length is not None:
                self.send_header("Content-Length", upstream_length)
        elif status >= 200 and status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def control(self, path, body):
        state = self.state
        if path == "/fault-proxy/loss" and self.command in ("POST", "PUT"):
            try:
                loss = float(body.decode("ascii").strip())
                if not 0.0 <= loss <= 1.0:
                    raise ValueError
            except (ValueError, UnicodeDecodeError):
                self.answer(400, b"loss must be a number from 0 to 1\n")
                return
            state.set_loss(loss)
            self.answer(200, b"ok")
        elif path == "/fault-proxy/stats" and self.command in ("GET", "HEAD"):
            self.answer(200, json.dumps(state.stats()).encode(), "application/json")
        else:
            self.answer(404, b"unknown fault-proxy endpoint\n")


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def server_bind(self):
        # HTTPServer.server_bind looks up the host's name (socket.getfqdn),
        # which can hang where there is no DNS; it is not needed here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name = host
        self.server_port = port


    def handle_error(self, request, client_address):
        # A client that hangs up mid-answer is normal here; stay quiet.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def watch_parent(pid):
    while True:
        time.sleep(1)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass  # alive, owned by someone else


def exit_after(seconds):
    time.sleep(seconds)
    os._exit(0)


def main(argv=None):
    parser = argparse.ArgumentParser(description="HTTP proxy that loses a fraction of answers")
    parser.add_argument("--upstream", required=True, help="http://HOST:PORT of the moto server")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: any free one)")
    parser.add_argument("--loss", type=float, default=0.0, help="fraction of answers lost, 0 to 1")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random decisions")
    parser.add_argument("--log", help="file to write one line per lost answer to")
    parser.add_argument(
        "--when",
        choices=["both", "before", "after"],
        default="both",
        help="when lost answers are lost: at random (both), or always before or after",
    )
    parser.add_argument("--parent-pid", type=int, help="exit when this process is gone")
    parser.add_argument("--max-seconds", type=float, help="exit after this many seconds")
    parser.add_argument(
        "--upstream-timeout", type=float, default=120.0, help="seconds to wait for moto"
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.loss <= 1.0:
        parser.error("--loss must be from 0 to 1")

    Handler.state = State(args.upstream, args.loss, args.seed, args.log, args.upstream_timeout)
    Handler.state.when = args.when
    server = Server(("127.0.0.1", args.port), Handler)
    if args.parent_pid is not None:
        threading.Thread(target=watch_parent, args=(args.parent_pid,), daemon=True).start()
    if args.max_seconds is not None:
        threading.Thread(target=exit_after, args=(args.max_seconds,), daemon=True).start()
    print(f"listening on 127.0.0.1:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
