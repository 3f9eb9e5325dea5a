#!/usr/bin/env python3
"""Writes the seed corpora of tests/fuzz/corpus/ (run from anywhere).

Request and response seeds start with two bytes the targets read as
options and read size (see the top of request_fuzz.cc / response_fuzz.cc);
config seeds are YAML. Regenerating rewrites the same files.
"""
import pathlib
import shutil

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# (name, options byte, read size, bytes)
REQUESTS = [
    ("get", 0, 0, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    ("get_bytewise", 0, 1, b"GET /x?y=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\n\r\n"),
    ("post_length", 0, 0, b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello world"),
    ("post_split", 0, 7, b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 11\r\n\r\nhello world"),
    ("chunked", 0, 0, b"POST /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                      b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer-A: 1\r\n\r\n"),
    ("chunked_split", 0, 3, b"PUT /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"1\r\na\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"),
    ("pipelined", 0, 0, b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nokGET /3 HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("http10_keepalive", 0, 0, b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /again HTTP/1.0\r\n\r\n"),
    ("http10_no_host", 0, 0, b"GET /old HTTP/1.0\r\n\r\n"),
    ("connection_close", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("websocket", 0, 0, b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\x81\x02hi"),
    ("h2c_upgrade", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"),
    ("expect", 0, 0, b"PUT /big HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc"),
    ("absolute_form", 0, 0, b"GET http://api.example.com/api/users?id=1 HTTP/1.1\r\nHost: other\r\n\r\n"),
    ("asterisk", 0, 0, b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("api_rewrite", 0, 0, b"POST /api/orders/7?x=1 HTTP/1.1\r\nHost: api.example.com\r\nX-Debug: 1\r\n"
                          b"X-Forwarded-For: 10.0.0.1\r\nContent-Length: 2\r\n\r\n{}"),
    ("wild_regex", 0, 0, b"GET /r/42 HTTP/1.1\r\nHost: shop.example.com:8080\r\nX-Forwarded-Proto: http\r\n\r\n"),
    ("canary", 0, 0, b"GET /a/b HTTP/1.1\r\nHost: a\r\nX-Canary: 1\r\n\r\n"),
    ("healthz", 0, 0, b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("connection_tokens", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Secret, keep-alive\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n"),
    ("xff_chain", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: , 2.2.2.2\r\n\r\n"),
    ("dot_segments", 0, 0, b"GET /api/../admin/%2e%2e/x HTTP/1.1\r\nHost: api.example.com\r\n\r\n"),
    ("percent", 0, 0, b"GET /a%20b/%41?q=%zz HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("empty_values", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nA:\r\nB: \r\nC:\tx\t\r\n\r\n"),
    # Smuggling shapes: each must be refused or framed one way only.
    ("cl_te", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("te_cl", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nX"),
    ("cl_cl", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde"),
    ("cl_list", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"),
    ("cl_plus", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc"),
    ("te_identity", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\nabc"),
    ("te_gzip_chunked", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("te_chunked_twice", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("te_xchunked", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
    ("te_space_colon", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    ("te_obs_fold", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    ("te_tab", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n"),
    ("chunk_overflow", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\nx\r\n0\r\n\r\n"),
    ("chunk_bare_lf", 0, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n"),
    ("bare_lf", 0, 0, b"GET / HTTP/1.1\nHost: a\n\n"),
    ("bare_cr", 0, 0, b"GET / HTTP/1.1\rHost: a\r\n\r\n"),
    ("nul_header", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x00c\r\n\r\n"),
    ("ctl_header", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\x01c\x7f\r\n\r\n"),
    ("obs_text", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nX-A: caf\xc3\xa9\r\n\r\n"),
    ("two_hosts", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("no_host_11", 0, 0, b"GET / HTTP/1.1\r\n\r\n"),
    ("connect", 0, 0, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"),
    ("bad_version", 0, 0, b"GET / HTTP/1.7\r\nHost: a\r\n\r\n"),
    ("http09", 0, 0, b"GET /\r\n\r\n"),
    ("lowercase_method", 0, 0, b"get / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("small_long_url", 1, 0, b"GET /" + b"a" * 300 + b" HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("small_big_header", 1, 0, b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 300 + b"\r\n\r\n"),
    ("small_many_headers", 1, 0, b"GET / HTTP/1.1\r\n" + b"A:\r\n" * 80 + b"\r\n"),
    ("small_body_limit", 1, 0, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 65\r\n\r\n" + b"x" * 65),
    ("small_chunked_limit", 1, 5, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n40\r\n" + b"y" * 64 + b"\r\n1\r\nz\r\n0\r\n\r\n"),
    # Findings of the fuzzer, kept as seeds so the smoke test guards them.
    ("regress_empty_name", 0, 1, b"GET /x?A\n:\r\nA:\r\n\nA:\r\n"),
    ("regress_empty_name_11", 0, 0, b"GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"),
    ("regress_trailers", 1, 0, b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"
                               b"User-Agent: evil\r\nX-Big: " + b"v" * 250 + b"\r\n\r\n"),
]

RESPONSES = [
    ("length", 0, 0, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"),
    ("length_split", 0, 3, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: app\r\n\r\nhello world!"),
    ("chunked", 0, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    ("chunked_bytewise", 0, 1, b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("until_close", 0, 0, b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of this until the server closes"),
    ("until_close_http10_client", 2, 0, b"HTTP/1.1 200 OK\r\n\r\nbody for an HTTP/1.0 client"),
    ("chunked_http10_client", 2, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"),
    ("length_http10_client", 2, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("http10_response", 0, 0, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("head_length", 1, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"),
    ("head_chunked", 1, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("no_content", 0, 0, b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"),
    ("not_modified", 0, 0, b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\nETag: \"x\"\r\n\r\n"),
    ("continue_then_ok", 0, 0, b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("early_hints", 0, 0, b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("switching", 8, 0, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n\x81\x02hi"),
    ("connection_close", 0, 0, b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nbye"),
    ("client_close", 4, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye"),
    ("connection_tokens", 0, 0, b"HTTP/1.1 200 OK\r\nConnection: X-Internal, keep-alive\r\nX-Internal: secret\r\nKeep-Alive: timeout=5\r\nTrailer: X\r\nContent-Length: 0\r\n\r\n"),
    ("edits", 16, 0, b"HTTP/1.1 200 OK\r\nServer: legacy/1.0\r\nX-Served-By: app\r\nContent-Length: 1\r\n\r\nx"),
    ("empty_reason", 0, 0, b"HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n"),
    ("odd_status", 0, 0, b"HTTP/1.1 599 Whatever\r\nContent-Length: 1\r\n\r\nz"),
    ("junk_after", 0, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("cl_te", 0, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("cl_cl", 0, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
    ("te_gzip", 0, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nnot really gzip"),
    ("te_gzip_chunked", 0, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nzz\r\n0\r\n\r\n"),
    ("truncated_chunked", 0, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nonly part"),
    ("truncated_length", 0, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort"),
    ("bad_chunk", 0, 0, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("not_http", 0, 0, b"SSH-2.0-OpenSSH_9.2\r\n"),
    ("bare_lf", 0, 0, b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("header_tabs", 0, 0, b"HTTP/1.1 200 OK\r\nX-A:\tone\t\r\nContent-Length: 0\r\n\r\n"),
    # Findings of the fuzzer, kept as seeds so the smoke test guards them.
    ("regress_name_not_token", 0, 0, b"HTTP/1.1 200 OK\r\nTransfe c%-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nzz\r\n\r\n0\r\n\r\n"),
    ("regress_101_unasked", 0, 0, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nraw bytes"),
    ("regress_1xx_body", 1, 29, b"HTTP/1.1 100 Conti 200 OK\r\nContent-Length: 2\r\n\r\n\x00\x00HTTP/1.1 204 No Content\r\n\r\n"),
    ("regress_204_te", 0, 0, b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: gzip\r\n\r\nHTTP/1.1 200 OK\r\n\r\nsmuggled"),
    ("regress_status_20", 0, 0, b"HTTP/1.0 20 OK\r\nContent-Length:2 \r\n\r\nok"),
    ("regress_length_03", 3, 0, b"HTTP/1.1 200 OK\r\nContent-Length: 03\r\nServer: \xff\xff app\r\n\n\x00\x00\x00"),
]

CONFIGS = [
    ("minimal", b'listeners:\n  - { name: web, listen: "127.0.0.1:8080" }\n'),
    ("respond_only", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
                     b'  - { name: all, respond: { status: 204 } }\n'),
    ("respond_headers", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
                        b'  - name: hi\n    respond: { status: 200, body: "hi\\n", headers: { Content-Type: text/plain, X-A: "b c" } }\n'),
    ("forward", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
                b'  - { name: app, match: { path_prefix: "/app/" }, upstream: app, rewrite: { strip_prefix: "/app", add_prefix: "/v2/" } }\n'
                b'upstreams:\n  app:\n    servers: [{ address: "127.0.0.1:5001", max_concurrent: 4 }]\n'),
    ("edits", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
              b'  - name: app\n    match: { host: "*.example.com", methods: [GET, POST], headers: { X-Canary: "1" } }\n'
              b'    upstream: app\n    request_headers: { set: { X-Env: prod, Host: internal }, remove: [X-Debug, X-Forwarded-For] }\n'
              b'    response_headers: { set: { X-Served-By: sluice }, remove: [Server] }\n'
              b'upstreams:\n  app:\n    servers: [{ address: "[::1]:5001" }]\n'),
    ("regex", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
              b'  - { name: r, match: { path_regex: "^/reports/[0-9]+$" }, upstream: app }\n'
              b'upstreams: { app: { servers: [{ address: "127.0.0.1:5001" }] } }\n'),
    ("anchors", b'x-server: &s { address: "127.0.0.1:5001" }\n'
                b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\n'
                b'upstreams: { a: { servers: [*s] }, b: { servers: [*s, { address: "127.0.0.1:5002", weight: 3 }] } }\n'),
    ("durations_sizes", b'drain_timeout: 1m30s\nlisteners:\n  - name: web\n    listen: "0.0.0.0:8080"\n'
                        b'    timeouts: { header: 500ms, body: 2m, idle: 1h, send: 10s }\n'
                        b'    limits: { max_header_bytes: 8KiB, max_body_bytes: 1GiB }\n'),
    ("bad_duration", b'listeners:\n  - name: web\n    listen: "127.0.0.1:8080"\n    timeouts: { header: 10 }\n'),
    ("bad_address", b'listeners: [{ name: web, listen: "localhost" }]\n'),
    ("unknown_key", b'listeners: [{ name: web, listen: "127.0.0.1:8080", colour: blue }]\nwrokers: 2\n'),
    ("managed_header", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
                       b'  - { name: a, upstream: u, request_headers: { set: { Content-Length: "0" } } }\n'
                       b'upstreams: { u: { servers: [{ address: "127.0.0.1:1" }] } }\n'),
    ("missing_upstream", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes: [{ name: a, upstream: nope }]\n'),
    ("both_kinds", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes: [{ name: a, upstream: u, respond: { status: 200 } }]\n'
                   b'upstreams: { u: { servers: [{ address: "127.0.0.1:1" }] } }\n'),
    ("two_documents", b'listeners: []\n---\nworkers: 1\n'),
    ("syntax_error", b'listeners: [ { name: web, listen: "127.0.0.1:8080" \n'),
    ("tabs", b'listeners:\n\t- name: web\n'),
    ("deep", b'a: ' + b'[' * 60 + b']' * 60 + b'\n'),
    ("empty", b''),
    ("scalar", b'just a string\n'),
    ("quoted_escapes", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
                       b'  - { name: a, respond: { status: 200, body: "tab\\there\\u00e9\\n" } }\n'),
    # Findings of the fuzzer, kept as seeds so the smoke test guards them.
    ("regress_leading_comma", b', listeners: [{ name: web, listen: "127.0.0.1:8080" }]\n'),
    ("regress_ctl_in_value", b'listeners: [{ name: web, listen: "127.0.0.1:8080" }]\nroutes:\n'
                             b'  - name: hi\n    respond: { status: 398, body: "hi\\n", headers: { X-A: "\x12b c" } }\n'),
]


def write(directory, name, data):
    (directory / name).write_bytes(data)


def main():
    corpus = HERE / "corpus"
    for sub in ("request", "response", "config"):
        d = corpus / sub
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
    for name, opts, piece, data in REQUESTS:
        write(corpus / "request", name, bytes([opts, piece]) + data)
    for name, opts, piece, data in RESPONSES:
        write(corpus / "response", name, bytes([opts, piece]) + data)
    for name, data in CONFIGS:
        write(corpus / "config", name + ".yaml", data)
    for example in sorted((ROOT / "config" / "examples").glob("*.yaml")):
        write(corpus / "config", "example_" + example.name, example.read_bytes())
    for example in sorted((ROOT / "packaging").glob("*.yaml")):
        write(corpus / "config", "packaging_" + example.name, example.read_bytes())


if __name__ == "__main__":
    main()
