"""moto's server (S3, IAM) with one correction to its signature check, for
the tests that turn on moto's IAM enforcement (crates/cli/tests/ransomware.rs).

moto 5.2.1 recomputes a request's SigV4 signature from a query string it has
already percent-decoded: `prefix=repo%2Fkeys%2F` becomes `prefix=repo/keys/`,
so every correctly signed listing with a `/` in its prefix fails with
SignatureDoesNotMatch (boto3's as well as reprise's). AWS canonicalizes each
query name and value as RFC 3986 percent-encoding of the decoded text
(everything but A-Z a-z 0-9 - _ . ~ encoded). This wrapper applies that rule
before moto computes the signature; nothing else changes, and a request
signed with a wrong key or over other bytes is still refused.

Usage: python moto_iam_server.py -H 127.0.0.1 -p PORT
"""

import sys
from urllib.parse import quote, unquote

from moto.iam import access_control

_create = access_control.IAMRequestBase._create_aws_request


def _create_aws_request(self):
    path, sep, query = self._path.partition("?")
    if sep:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            pairs.append(quote(unquote(key), safe="-_.~") + eq + quote(unquote(value), safe="-_.~"))
        self._path = path + "?" + "&".join(pairs)
    return _create(self)


access_control.IAMRequestBase._create_aws_request = _create_aws_request

from moto.server import main  # noqa: E402  (after the patch)

sys.exit(main(sys.argv[1:]))
