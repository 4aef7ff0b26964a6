#!/usr/bin/env python3
"""Fetch many IDs from one HTTP API through fanout's C API, with ctypes alone.

    python3 fetch_users.py [--library PATH] [--timeout SECONDS] [--keys] URL_TEMPLATE ID...

Prints one line per ID, "ID<TAB>body", in ascending ID order. With --keys, the IDs are
text keys (logins, UUIDs, ...), percent-encoded into the URL, and printed in byte
order. If an ID fails, prints the library's error to stderr and exits 1; the rest of
the call is cancelled.

The library is libfanout_ffi.so, built with `cargo build --release -p fanout-ffi`
(target/release/). Without --library, FANOUT_LIBRARY or the system's search path is
used. ctypes releases the GIL during the call, so other Python threads run meanwhile,
and any of them may cancel it with `Cancel.cancel()`.
"""

import argparse
import ctypes
import ctypes.util
import os
import sys

# The codes of fanout_status in fanout.h.
STATUS_NAMES = {
    0: "ok",
    1: "invalid argument",
    2: "not found",
    3: "http status",
    4: "transport",
    5: "timeout",
    6: "too large",
    7: "cancelled",
    8: "deadline exceeded",
    9: "internal",
    10: "limiter",
    11: "system",
    12: "stopped",
}
OK = 0
NO_TIMEOUT = 2**64 - 1


class FanOutError(Exception):
    """A failed call: kind (a name from STATUS_NAMES), message, user_id or key,
    http_status."""

    def __init__(self, kind, message, user_id=None, http_status=None, key=None):
        super().__init__(message)
        self.kind = kind
        self.user_id = user_id
        self.key = key
        self.http_status = http_status


def load(path):
    """Loads the shared library and declares the functions this example uses."""
    lib = ctypes.CDLL(path)
    handle = ctypes.c_void_p
    status = ctypes.c_int32
    signatures = {
        "fanout_config_new": ([], handle),
        "fanout_config_set_url_template": ([handle, ctypes.c_char_p], status),
        "fanout_config_free": ([handle], None),
        "fanout_client_new": ([handle, ctypes.POINTER(handle), ctypes.POINTER(handle)], status),
        "fanout_client_free": ([handle], None),
        "fanout_cancel_new": ([ctypes.c_uint64], handle),
        "fanout_cancel_cancel": ([handle], status),
        "fanout_cancel_free": ([handle], None),
        "fanout_fetch_all": (
            [
                handle,
                ctypes.POINTER(ctypes.c_uint64),
                ctypes.c_size_t,
                handle,
                ctypes.POINTER(handle),
                ctypes.POINTER(handle),
            ],
            status,
        ),
        "fanout_fetch_all_keys": (
            [
                handle,
                ctypes.POINTER(ctypes.c_char_p),
                ctypes.c_size_t,
                handle,
                ctypes.POINTER(handle),
                ctypes.POINTER(handle),
            ],
            status,
        ),
        "fanout_results_len": ([handle], ctypes.c_size_t),
        "fanout_results_key_at": (
            [
                handle,
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.POINTER(ctypes.c_char)),
                ctypes.POINTER(ctypes.c_size_t),
                ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8)),
                ctypes.POINTER(ctypes.c_size_t),
            ],
            status,
        ),
        "fanout_results_at": (
            [
                handle,
                ctypes.c_size_t,
                ctypes.POINTER(ctypes.c_uint64),
                ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8)),
                ctypes.POINTER(ctypes.c_size_t),
            ],
            status,
        ),
        "fanout_results_free": ([handle], None),
        "fanout_error_kind": ([handle], status),
        "fanout_error_message": ([handle], ctypes.c_char_p),
        "fanout_error_user_id": ([handle, ctypes.POINTER(ctypes.c_uint64)], ctypes.c_bool),
        "fanout_error_key": ([handle], ctypes.c_char_p),
        "fanout_error_http_status": ([handle], ctypes.c_uint16),
        "fanout_error_free": ([handle], None),
    }
    for name, (argtypes, restype) in signatures.items():
        function = getattr(lib, name)
        function.argtypes = argtypes
        function.restype = restype
    return lib


def take_error(lib, error):
    """Turns a fanout_error into a FanOutError, freeing it."""
    try:
        kind = STATUS_NAMES.get(lib.fanout_error_kind(error), "unknown")
        message = lib.fanout_error_message(error).decode("utf-8", "replace")
        user_id = ctypes.c_uint64()
        has_id = lib.fanout_error_user_id(error, ctypes.byref(user_id))
        status = lib.fanout_error_http_status(error)
        key = lib.fanout_error_key(error)
        key = None if key is None else key.decode("utf-8")
        return FanOutError(kind, message, user_id.value if has_id else None, status or None, key)
    finally:
        lib.fanout_error_free(error)


class Cancel:
    """A cancel token, with a deadline `timeout` seconds away if given."""

    def __init__(self, lib, timeout=None):
        self._lib = lib
        ms = NO_TIMEOUT if timeout is None else int(timeout * 1000)
        self.handle = lib.fanout_cancel_new(ms)

    def cancel(self):
        self._lib.fanout_cancel_cancel(self.handle)

    def close(self):
        self._lib.fanout_cancel_free(self.handle)
        self.handle = None


class Client:
    """A fanout client with the library's default limits (10/s, burst 20, 8 in flight)."""

    def __init__(self, lib, url_template):
        self._lib = lib
        config = lib.fanout_config_new()
        try:
            if lib.fanout_config_set_url_template(config, url_template.encode()) != OK:
                raise FanOutError("invalid argument", "the URL template is not valid UTF-8")
            client, error = ctypes.c_void_p(), ctypes.c_void_p()
            if lib.fanout_client_new(config, ctypes.byref(client), ctypes.byref(error)) != OK:
                raise take_error(lib, error)
            self._client = client
        finally:
            lib.fanout_config_free(config)

    def fetch_all(self, ids, cancel=None):
        """Returns {id: body bytes}; raises FanOutError on the first failure."""
        lib = self._lib
        array = (ctypes.c_uint64 * len(ids))(*ids)
        results, error = ctypes.c_void_p(), ctypes.c_void_p()
        status = lib.fanout_fetch_all(
            self._client,
            array,
            len(ids),
            cancel.handle if cancel else None,
            ctypes.byref(results),
            ctypes.byref(error),
        )
        if status != OK:
            raise take_error(lib, error)
        try:
            bodies = {}
            user_id = ctypes.c_uint64()
            body = ctypes.POINTER(ctypes.c_uint8)()
            length = ctypes.c_size_t()
            for index in range(lib.fanout_results_len(results)):
                lib.fanout_results_at(
                    results, index, ctypes.byref(user_id), ctypes.byref(body), ctypes.byref(length)
                )
                bodies[user_id.value] = ctypes.string_at(body, length.value)
            return bodies
        finally:
            lib.fanout_results_free(results)

    def fetch_all_keys(self, keys, cancel=None):
        """Returns {key: body bytes} for text keys; raises FanOutError on the first
        failure."""
        lib = self._lib
        array = (ctypes.c_char_p * len(keys))(*(key.encode() for key in keys))
        results, error = ctypes.c_void_p(), ctypes.c_void_p()
        status = lib.fanout_fetch_all_keys(
            self._client,
            array,
            len(keys),
            cancel.handle if cancel else None,
            ctypes.byref(results),
            ctypes.byref(error),
        )
        if status != OK:
            raise take_error(lib, error)
        try:
            bodies = {}
            key = ctypes.POINTER(ctypes.c_char)()
            key_length = ctypes.c_size_t()
            body = ctypes.POINTER(ctypes.c_uint8)()
            length = ctypes.c_size_t()
            for index in range(lib.fanout_results_len(results)):
                lib.fanout_results_key_at(
                    results,
                    index,
                    ctypes.byref(key),
                    ctypes.byref(key_length),
                    ctypes.byref(body),
                    ctypes.byref(length),
                )
                # Keys are not NUL-terminated: read exactly their length.
                text = ctypes.string_at(key, key_length.value).decode("utf-8")
                bodies[text] = ctypes.string_at(body, length.value)
            return bodies
        finally:
            lib.fanout_results_free(results)

    def close(self):
        self._lib.fanout_client_free(self._client)
        self._client = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--library", default=os.environ.get("FANOUT_LIBRARY"))
    parser.add_argument("--timeout", type=float, help="seconds for the whole call")
    parser.add_argument("--keys", action="store_true", help="the IDs are text keys")
    parser.add_argument("url_template", help='for example "https://api.example.com/users/{id}"')
    parser.add_argument("ids", nargs="+")
    args = parser.parse_args()

    path = args.library or ctypes.util.find_library("fanout_ffi")
    if not path:
        sys.exit("libfanout_ffi not found: pass --library or set FANOUT_LIBRARY")
    lib = load(path)
    cancel = Cancel(lib, args.timeout)
    try:
        with Client(lib, args.url_template) as client:
            if args.keys:
                bodies = client.fetch_all_keys(args.ids, cancel)
            else:
                bodies = client.fetch_all([int(i) for i in args.ids], cancel)
    except FanOutError as e:
        print(f"fetch failed ({e.kind}): {e}", file=sys.stderr)
        return 1
    finally:
        cancel.close()
    # Text keys in byte order, as the library orders them; IDs by number.
    order = (lambda key: key.encode()) if args.keys else (lambda key: key)
    for key in sorted(bodies, key=order):
        print(f"{key}\t{bodies[key].decode('utf-8', 'replace')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
