"""A WebSocket connection whose every wait is bounded: websockets' Sans-I/O protocol on one socket, one thread.

Why not `websockets.sync`: its reader thread calls `SSLSocket.recv` on a blocking socket once `select()` sees
bytes. Over TLS those bytes can be records that carry no application data (TLS 1.3 session tickets), and the
thread then blocks in OpenSSL where neither `open_timeout` nor `close()` reaches it: a silent backend behind
a TLS proxy hung the suite, and a few percent of healthy handshakes stalled (its writer thread meanwhile
shares the SSL object with that reader). Here every socket operation runs in the caller's thread under the
time left to the caller's deadline, so a wait ends when it should, whatever the server does.
"""
from __future__ import annotations

import os
import socket
import ssl
import time

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from .. import ComfycheckError

CHUNK = 65536


class WsTimeout(ComfycheckError, TimeoutError):
    """Nothing came within the time given; the message says what was awaited."""


class WsClosed(ComfycheckError, ConnectionError):
    """The server closed the connection (a close frame, or the socket ended)."""


class WsConnection:
    def __init__(self, url: str, sock: socket.socket, protocol: ClientProtocol):
        self.url = url
        self._sock = sock
        self._protocol = protocol
        self._events: list = []
        self._fragments: list[bytes] = []
        self._fragment_text = False

    @classmethod
    def open(cls, url: str, *, headers: dict[str, str], ssl_context: ssl.SSLContext | None,
             timeout: float) -> WsConnection:
        """Connect, upgrade and return once the server's 101 arrived; raises InvalidStatus for any other answer."""
        deadline = time.monotonic() + timeout
        uri = parse_uri(url)
        try:
            sock = socket.create_connection((uri.host, uri.port), timeout=timeout)
        except TimeoutError:
            raise WsTimeout(f"WebSocket {url}: no TCP connection within {timeout:g} s") from None
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
            if uri.secure:
                sock.settimeout(_left(deadline, url, "TLS handshake", timeout))
                try:
                    sock = (ssl_context or ssl.create_default_context()).wrap_socket(sock, server_hostname=uri.host)
                except TimeoutError:
                    raise WsTimeout(f"WebSocket {url}: no TLS handshake within {timeout:g} s") from None
            protocol = ClientProtocol(uri, max_size=None)
            request = protocol.connect()
            request.headers.update(headers)
            protocol.send_request(request)
            conn = cls(url, sock, protocol)
            conn._flush(deadline, timeout)
            while True:
                events = conn._read(deadline, "handshake response (HTTP 101)", timeout)
                if events and isinstance(events[0], Response):
                    if protocol.handshake_exc is not None:
                        raise protocol.handshake_exc
                    conn._events = events[1:]
                    return conn
                if protocol.handshake_exc is not None:
                    raise protocol.handshake_exc
        except BaseException:
            sock.close()
            raise

    def recv(self, timeout: float) -> str | bytes | None:
        """The next whole message, or None when `timeout` seconds pass without one."""
        deadline = time.monotonic() + timeout
        while True:
            while self._events:
                message = self._assemble(self._events.pop(0))
                if message is not None:
                    return message
            try:
                self._events = self._read(deadline, "message", timeout)
            except WsTimeout:
                return None

    def ping(self, timeout: float) -> float:
        """Round-trip a ping (the server's WebSocket layer answers it); seconds taken. Messages that arrive
        meanwhile are kept for recv(). Raises WsClosed when the connection is gone, WsTimeout without a pong."""
        payload = os.urandom(8)
        t0 = time.monotonic()
        deadline = t0 + timeout
        self._protocol.send_ping(payload)
        self._flush(deadline, timeout)
        while True:
            events = self._read(deadline, "pong", timeout)
            for event in events:
                if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                    self._assemble(event)  # raises WsClosed, with the close code
            self._events.extend(events)
            if any(isinstance(e, Frame) and e.opcode is Opcode.PONG and e.data == payload for e in events):
                return time.monotonic() - t0

    def send_text(self, text: str, timeout: float = 10.0) -> None:
        self._protocol.send_text(text.encode())
        self._flush(time.monotonic() + timeout, timeout)

    def abort(self) -> None:
        """From another thread: end the connection now; a recv() waiting on it returns with WsClosed or OSError."""
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Say goodbye if the socket still takes it (briefly), then close it; never waits long."""
        try:
            if self._protocol.state is State.OPEN:
                self._protocol.send_close()
                self._flush(time.monotonic() + 1.0, 1.0)
        except OSError:
            pass
        finally:
            self._sock.close()

    def __enter__(self) -> WsConnection:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- the one thread's I/O --------------------------------------------------------------------
    def _read(self, deadline: float, what: str, timeout: float) -> list:
        self._sock.settimeout(_left(deadline, self.url, what, timeout))
        try:
            data = self._sock.recv(CHUNK)
        except TimeoutError:
            raise WsTimeout(f"WebSocket {self.url}: no {what} within {timeout:g} s") from None
        if data:
            self._protocol.receive_data(data)
        else:
            self._protocol.receive_eof()
        self._flush(deadline, timeout)  # pongs to pings, the reply to a close
        events = self._protocol.events_received()
        if not data and not events:
            raise WsClosed(f"WebSocket {self.url}: the server closed the connection")
        return events

    def _flush(self, deadline: float, timeout: float) -> None:
        for data in self._protocol.data_to_send():
            if data:
                self._sock.settimeout(_left(deadline, self.url, "room in the socket to send", timeout))
                try:
                    self._sock.sendall(data)
                except TimeoutError:
                    raise WsTimeout(f"WebSocket {self.url}: could not send within {timeout:g} s") from None

    def _assemble(self, event) -> str | bytes | None:
        if not isinstance(event, Frame):
            return None
        if event.opcode is Opcode.CLOSE:
            close = self._protocol.close_rcvd
            detail = f"code {close.code}{f' ({close.reason})' if close.reason else ''}" if close else "no close frame"
            raise WsClosed(f"WebSocket {self.url}: the server closed the connection ({detail})")
        if event.opcode in (Opcode.TEXT, Opcode.BINARY):
            self._fragments, self._fragment_text = [bytes(event.data)], event.opcode is Opcode.TEXT
        elif event.opcode is Opcode.CONT:
            self._fragments.append(bytes(event.data))
        else:
            return None  # ping/pong: the protocol already answered
        if not event.fin:
            return None
        data = b"".join(self._fragments)
        self._fragments = []
        return data.decode() if self._fragment_text else data


def _left(deadline: float, url: str, what: str, timeout: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise WsTimeout(f"WebSocket {url}: no {what} within {timeout:g} s")
    return left
