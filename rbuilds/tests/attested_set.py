#!/usr/bin/env python3
"""Waits until ra-web-srv lists every file of a local directory, under a
path prefix, with the file's SHA3-512 (nothing written was lost), and its
/ready/ answers 200 (nothing pending or failed).

Used by the image test's fault suite (rbuilds/tests/fault-checks.sh):

    attested_set.py --url https://127.0.0.1:8443 --dir DIR --prefix /data/faults/ --timeout 180

Exit status 0 when every file matches before the time limit, 1 otherwise
(with the files missing or different). The TLS certificate is not checked
here: this compares contents; ra-verify checks the endpoint and documents.
"""

import argparse
import hashlib
import json
import os
import ssl
import sys
import time
import urllib.parse
import urllib.request


def local_hashes(root: str, prefix: str) -> dict:
    hashes = {}
    for directory, _, files in os.walk(root):
        for name in files:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                digest = hashlib.sha3_512(f.read()).hexdigest()
            hashes[prefix + os.path.relpath(path, root)] = digest
    return hashes


def unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ready/", context=unverified(), timeout=20) as reply:
            return reply.status == 200
    except OSError:  # an HTTP error status (503, 422) or no connection
        return False


def remote_hashes(url: str, prefix: str) -> dict:
    context = unverified()
    found, after = {}, None
    while True:
        query = {"prefix": prefix, "limit": "10000"}
        if after:
            query["after"] = after
        full = f"{url}/hashes/?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(full, context=context, timeout=20) as reply:
            page = json.load(reply)
        for item in page["hashes"]:
            found[item["path"]] = item["sha3_512"]
        after = page.get("next")
        if not after:
            return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--timeout", type=float, default=180)
    args = parser.parse_args()
    wanted = local_hashes(args.dir, args.prefix)
    deadline = time.monotonic() + args.timeout
    missing = wanted
    while True:
        try:
            found = remote_hashes(args.url, args.prefix)
            missing = {p: h for p, h in wanted.items() if found.get(p) != h}
            if not missing and ready(args.url):
                print(f"all {len(wanted)} files under {args.prefix} hashed and attested; ready")
                return 0
        except (OSError, ValueError, KeyError) as err:
            print(f"attested_set: {err}", file=sys.stderr)
        if time.monotonic() > deadline:
            shown = sorted(missing)[:10]
            print(
                f"{len(missing)} of {len(wanted)} files not attested with their hash "
                f"after {args.timeout:.0f} s, e.g. {shown}; /ready/ "
                f"{'200' if ready(args.url) else 'not 200'}",
                file=sys.stderr,
            )
            return 1
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
